"""06_elo_judging: questions, answers, a Prometheus-style pairwise judge, its cache, and Elo ratings."""
