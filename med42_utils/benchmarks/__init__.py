"""05_benchmarks: the Table 4 benchmarks as lm-eval custom tasks, runs over a list of models, results."""
from .data import BENCHMARKS, BenchmarkDataError, benchmark_questions, load_benchmark

__all__ = ["BENCHMARKS", "BenchmarkDataError", "benchmark_questions", "load_benchmark"]
