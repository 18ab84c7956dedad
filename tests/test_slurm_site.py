"""Site options (params' slurm section, MED42_SLURM), the rendered script, the job's environment, and the
checks before submitting. Pure logic here; tests/test_slurm_site_real.py runs the same against a real SLURM."""
from __future__ import annotations

import shlex
import subprocess

import pytest

import fakeslurm
from med42_utils import slurm_site
from med42_utils.launch import NotReady, execute, plan_job, plan_launch, readiness_problems, render_plan
from med42_utils.params import ParamsError, load_params
from med42_utils.params.base import Hardware
from med42_utils.params.slurm import SlurmOptions, env_overrides, time_hours
from med42_utils.preflight import stage_needs

# `sinfo -h -o '%P|%D|%c|%G|%l|%f'` of a site with two partitions (one default, marked *) and mixed GPU nodes
SINFO = """gpu*|4|96|gpu:h100:8(S:0-1)|2-00:00:00|h100,ib
gpu*|2|64|gpu:h100:4|2-00:00:00|h100
debug|1|32|gpu:a100:2,gpu:v100:1|1:00:00|a100
cpu|10|128|(null)|infinite|
"""


@pytest.fixture(autouse=True)
def _tmp_root(tmp_path, monkeypatch):
    fakeslurm.use_tmp_root(tmp_path, monkeypatch)
    monkeypatch.delenv("MED42_SLURM", raising=False)


# ---------------------------------------------------------------- params: the slurm section


@pytest.mark.parametrize("text,hours", [("90", 1.5), ("30:00", 0.5), ("12:00:00", 12.0), ("1-12", 36.0),
                                        ("2-00:30:00", 48.5), ("UNLIMITED", None)])
def test_time_limits_read_as_slurm_writes_them(text, hours):
    assert time_hours(text) == hours


def test_site_options_come_from_params_and_a_stage_wins_over_the_site_default():
    p = load_params("8b", {"slurm.partition": "gpu", "slurm.account": "med", "slurm.extra": ["--mail-type=END"],
                           "slurm.sft.partition": "long", "slurm.sft.time": "14:00:00",
                           "slurm.sft.extra": ["--comment=sft"]})
    sft, dpo = p.slurm.for_stage("sft"), p.slurm.for_stage("dpo")
    assert (sft.partition, sft.account, sft.time) == ("long", "med", "14:00:00")
    assert sft.extra == ["--mail-type=END", "--comment=sft"], "extra lines add up, site first"
    assert (dpo.partition, dpo.account, dpo.time, dpo.extra) == ("gpu", "med", None, ["--mail-type=END"])
    assert load_params("8b").slurm.for_stage("eval") == SlurmOptions(), "every size ships the section empty"


def test_bad_site_options_are_refused_naming_the_key():
    with pytest.raises(ParamsError, match=r"slurm\.sft\.time.*not a SLURM time limit.*12:00:00"):
        load_params("8b", {"slurm.sft.time": "12h"})
    with pytest.raises(ParamsError, match=r"slurm\.account.*one word"):
        load_params("8b", {"slurm.account": "my account"})
    with pytest.raises(ParamsError, match=r"slurm\.extra.*starting with '-'"):
        load_params("8b", {"slurm.extra": ["mail-type=END"]})
    with pytest.raises(ParamsError, match=r"slurm\.cpus_per_task"):
        load_params("8b", {"slurm.cpus_per_task": 0})
    with pytest.raises(ParamsError, match=r"unknown key 'slurm\.partiton'"):
        load_params("8b", {"slurm.partiton": "gpu"})


def test_med42_slurm_overrides_one_run_and_keeps_times_as_text(monkeypatch):
    assert env_overrides("account=abc sft.time=12:00:00 cpus_per_task=16 exclusive=false extra=--a=1 extra=--b") == {
        "slurm.account": "abc", "slurm.sft.time": "12:00:00", "slurm.cpus_per_task": 16,
        "slurm.exclusive": False, "slurm.extra": ["--a=1", "--b"]}
    monkeypatch.setenv("MED42_SLURM", "partition=gpu sft.time=1-00:00:00 extra=--mail-type=END")
    p = load_params("70b")
    assert p.slurm.for_stage("sft").time == "1-00:00:00" and p.slurm.partition == "gpu"
    # an explicit override (a notebook's) still wins over the environment
    assert load_params("70b", {"slurm.partition": "long"}).slurm.partition == "long"
    monkeypatch.setenv("MED42_SLURM", "sft.partion=gpu")
    with pytest.raises(ParamsError, match=r"MED42_SLURM: 'sft\.partion=gpu' is not \[stage\.\]key=value"):
        load_params("70b")
    monkeypatch.setenv("MED42_SLURM", "time=12h")
    with pytest.raises(ParamsError, match=r"slurm\.time.*MED42_SLURM='time=12h'"):
        load_params("70b")


def test_site_options_do_not_make_a_finished_stage_stale():
    """Moving a job to another partition or account changes nothing it computes."""
    from med42_utils.manifest import STAGE_PARAMS

    assert all("slurm" not in sections for sections in STAGE_PARAMS.values())


# ---------------------------------------------------------------- sinfo and the request


def test_sinfo_is_read_per_partition_with_gpus_from_gres():
    parts = {p.name: p for p in slurm_site.parse_sinfo(SINFO)}
    assert parts["gpu"].default and not parts["debug"].default
    assert [(g.count, g.cpus, g.gpus) for g in parts["gpu"].groups] == [(4, 96, 8), (2, 64, 4)]
    assert parts["debug"].groups[0].gpus == 3 and parts["cpu"].groups[0].gpus == 0
    assert parts["gpu"].max_hours == 48 and parts["debug"].max_hours == 1 and parts["cpu"].max_hours is None
    assert parts["gpu"].nodes_with(8) == 4 and parts["gpu"].nodes_with(4) == 6 and parts["gpu"].nodes_with(4, 65) == 4


def test_exclusive_and_all_memory_only_when_a_job_takes_every_gpu_of_its_nodes():
    parts = slurm_site.parse_sinfo(SINFO)
    sft = load_params("8b").sft.hardware                  # 2 x 8 H100
    full = slurm_site.site_request(SlurmOptions(), sft, parts)
    assert full.exclusive and "--exclusive" in full.lines and "--mem=0" in full.lines
    assert "--cpus-per-task=96" in full.lines, "an exclusive job gets every CPU of the node"
    one = load_params("workshop").sft.hardware           # 1 x 1 H100
    part = slurm_site.site_request(SlurmOptions(), one, parts)
    assert not part.exclusive and "--exclusive" not in part.lines and "--mem=0" not in part.lines
    assert "--cpus-per-task=12" in part.lines, "one GPU of 8 gets an eighth of the node's 96 CPUs"
    forced = slurm_site.site_request(SlurmOptions(exclusive=False, cpus_per_task=4), sft, parts)
    assert forced.lines == ["--cpus-per-task=4"]
    # off the cluster (dry run on a laptop): H100 nodes are taken to hold 8 GPUs; CPUs are not asked for
    dry = slurm_site.site_request(SlurmOptions(), sft, None)
    assert dry.exclusive and dry.cpus_per_task is None and any("not asked" in n for n in dry.notes)


def test_a_request_that_fits_no_partition_says_what_to_change():
    parts = slurm_site.parse_sinfo(SINFO)
    hw70 = load_params("70b").sft.hardware               # 6 x 8 H100
    req = slurm_site.site_request(SlurmOptions(), hw70, parts)
    (msg,) = slurm_site.fit_problems(req, hw70, parts, "sft")
    assert "6 node(s) x 8 GPUs" in msg and "partition gpu has 4 node(s)" in msg and "slurm.sft.partition" in msg
    hw8 = load_params("8b").sft.hardware
    ok = slurm_site.site_request(SlurmOptions(time="1-00:00:00"), hw8, parts)
    assert slurm_site.fit_problems(ok, hw8, parts, "sft") == []
    assert slurm_site.fit_problems(ok, hw8, None, "sft") == [], "without sinfo nothing is claimed"
    (nope,) = slurm_site.fit_problems(slurm_site.site_request(SlurmOptions(partition="gpux"), hw8, parts), hw8, parts,
                                      "sft")
    assert "partition 'gpux' does not exist" in nope and "debug" in nope
    (late,) = slurm_site.fit_problems(slurm_site.site_request(SlurmOptions(time="3-00:00:00"), hw8, parts), hw8,
                                      parts, "sft")
    assert "over partition gpu's limit of 48 h" in late
    # the bug this replaces: 96 CPUs per task on nodes that have 2 stays PENDING (PartitionConfig) for ever
    small = slurm_site.parse_sinfo("debug*|1|2|gpu:8|infinite|\n")
    one = load_params("workshop").sft.hardware
    (cpu,) = slurm_site.fit_problems(slurm_site.site_request(SlurmOptions(cpus_per_task=96), one, small), one, small,
                                     "sft")
    assert "96 CPUs per node" in cpu and "slurm.cpus_per_task" in cpu


@pytest.mark.parametrize("gres,gpus", [("gpu:8", 8), ("gpu:h100:8(S:0-1)", 8), ("gpu:a100:4,gpu:v100:2", 6),
                                       ("gpu:a100:2(S:0,1),gpu:v100:1", 3), ("gpu:4,mps:400", 4),
                                       ("gpu:h100:4,shard:h100:32", 4), ("(null)", 0), ("", 0)])
def test_gres_counts_gpus_only_also_with_sockets_and_other_resources(gres, gpus):
    """A comma inside '(S:0,1)' does not split an item; MPS and shards are shares of GPUs, not more of them."""
    assert slurm_site.gres_gpus(gres) == gpus


def test_sinfo_lines_without_features_limit_or_cpu_count_are_read_and_blank_lines_skipped():
    text = ("A100X*|2|96+|gpu:8|1-12:30:00|a100x\n"
            "\n"
            "shared|3|N/A|gpu:h100:4|n/a\n"          # five columns: no features; no limit; CPUs sinfo cannot give
            "old|1|16|gpu:1||\n"
            "mini|5|1|gpu:1|infinite|\n")
    parts = {p.name: p for p in slurm_site.parse_sinfo(text)}
    assert list(parts) == ["A100X", "shared", "old", "mini"], "only the trailing '*' is the default's mark"
    assert parts["A100X"].default and not any(p.default for n, p in parts.items() if n != "A100X")
    assert [(g.count, g.cpus, g.gpus, g.features) for p in parts.values() for g in p.groups] == [
        (2, 96, 8, "a100x"), (3, 0, 4, ""), (1, 16, 1, ""), (5, 1, 1, "")]
    assert [p.max_hours for p in parts.values()] == [36.5, None, None, None]
    assert parts["mini"].nodes_with(1) == 5, "a job asks for at least one CPU, which a 1-CPU node has"
    with pytest.raises(ValueError, match=r"unexpected sinfo line 'gpu\|4\|96' \(format %P\|%D\|%c\|%G\|%l\|%f\)"):
        slurm_site.parse_sinfo("gpu*|4|96|gpu:8|infinite|\ngpu|4|96\n")


def test_partitions_describe_their_nodes_and_limits_in_the_refusal_that_lists_them():
    parts = slurm_site.parse_sinfo(SINFO)
    gpu, debug, cpu = (p.describe() for p in parts)
    assert gpu == "gpu (default): 4 x (96 CPUs, 8 GPUs), 2 x (64 CPUs, 4 GPUs); time limit 48 h"
    assert debug == "debug: 1 x (32 CPUs, 3 GPUs); time limit 1 h"
    assert cpu == "cpu: 10 x (128 CPUs, 0 GPUs); no time limit"
    hw = load_params("8b").sft.hardware
    fix = "set slurm.partition or slurm.sft.partition, e.g. MED42_SLURM='partition=NAME'"
    assert slurm_site.fit_problems(slurm_site.site_request(SlurmOptions(partition="gpux"), hw, parts), hw, parts,
                                   "sft") == [f"partition 'gpux' does not exist (sinfo: {gpu}; {debug}; {cpu}); {fix}"]
    no_default = slurm_site.parse_sinfo("debug|1|32|gpu:2|1:00:00|\n")
    req = slurm_site.site_request(SlurmOptions(), hw, no_default)
    assert slurm_site.fit_problems(req, hw, no_default, "sft") == [
        f"the cluster has no default partition (sinfo: debug: 1 x (32 CPUs, 2 GPUs); time limit 1 h); {fix}"]
    assert slurm_site.fit_problems(req, hw, [], "sft") == [f"the cluster has no default partition (sinfo: none); {fix}"]


def _fake_sinfo(bin_dir, body):
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "sinfo").write_text("#!/bin/bash\n" + body)
    (bin_dir / "sinfo").chmod(0o755)


def test_sinfo_is_asked_for_the_format_parse_reads_and_a_failing_or_absent_sinfo_is_no_answer(tmp_path, monkeypatch):
    bin_dir, args = tmp_path / "bin", tmp_path / "args"
    _fake_sinfo(bin_dir, f'printf "%s\\n" "$@" > {shlex.quote(str(args))}\nprintf "%s" {shlex.quote(SINFO)}\n')
    monkeypatch.setenv("PATH", str(bin_dir))                 # this fake only, never the machine's sinfo
    parts = slurm_site.read_sinfo()
    assert args.read_text().splitlines() == ["-h", "-o", "%P|%D|%c|%G|%l|%f"], "no header line, the six columns"
    assert parts == slurm_site.parse_sinfo(SINFO)
    _fake_sinfo(bin_dir, 'echo "slurm_load_partitions: Unable to contact slurm controller" >&2\nexit 1\n')
    assert slurm_site.read_sinfo() is None
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert slurm_site.read_sinfo() is None


def test_a_sinfo_that_never_answers_is_given_up_on(tmp_path, monkeypatch):
    _fake_sinfo(tmp_path / "bin", "sleep 1000\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))

    def hung(cmd, **kw):  # what subprocess.run does with a process that never ends: wait for ever, or time out
        assert kw.get("timeout"), "without a timeout the dry run would hang on an unanswering controller"
        raise subprocess.TimeoutExpired(cmd, kw["timeout"])

    monkeypatch.setattr(slurm_site.subprocess, "run", hung)
    assert slurm_site.read_sinfo() is None


@pytest.mark.parametrize("value,offline", [(None, True), ("1", True), ("true", True), ("0", False), ("false", False),
                                           ("No", False), (" OFF ", False)])
def test_jobs_run_offline_unless_this_shell_turns_it_off(value, offline, monkeypatch):
    if value is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert slurm_site.job_offline() is offline


def test_a_secret_added_to_the_passed_settings_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(slurm_site, "PASSED_IF_SET", (*slurm_site.PASSED_IF_SET, "WANDB_API_KEY"))
    monkeypatch.setenv("WANDB_API_KEY", "secret-value")
    with pytest.raises(RuntimeError, match=r"secrets must never be written into a job script: \['WANDB_API_KEY'\]"):
        slurm_site.environment_lines()


# a partition over a day and a half, one under an hour, one without a limit
LIMITS = "long*|4|96|gpu:8|1-12:30:00|\nshort|4|96|gpu:8|45:00|\nopen|4|96|gpu:8|infinite|\n"


def test_the_plans_time_is_capped_at_the_partitions_limit_written_as_slurm_reads_it():
    parts, hw = slurm_site.parse_sinfo(LIMITS), load_params("8b").sft.hardware
    req = slurm_site.site_request(SlurmOptions(), hw, parts, default_time="2-00:00:00", stage="sft")
    assert req.options.time == "1-12:30:00" and "--time=1-12:30:00" in req.lines
    assert req.notes[0] == ("--time=1-12:30:00: the plan suggests 2-00:00:00, above partition long's limit; the job "
                            "stops at the limit (training checkpoints and requeues itself, docs/resume.md)")
    assert not any("no slurm.time" in n for n in req.notes), "the job has a time now"
    short = slurm_site.site_request(SlurmOptions(partition="short"), hw, parts, default_time="1:00:00", stage="sft")
    assert short.options.time == "0:45:00", "the named partition's limit, not the default one's; no day part"
    at = slurm_site.site_request(SlurmOptions(), hw, parts, default_time="1-12:30:00", stage="dpo")
    assert at.options.time == "1-12:30:00"
    assert at.notes[0] == "--time=1-12:30:00: from the plan's estimate (set slurm.dpo.time to choose)"
    free = slurm_site.site_request(SlurmOptions(partition="open"), hw, parts, default_time="5-00:00:00")
    assert free.options.time == "5-00:00:00"
    assert free.notes[0] == "--time=5-00:00:00: from the plan's estimate (set slurm.<stage>.time to choose)"
    own = slurm_site.site_request(SlurmOptions(time="3:00:00"), hw, parts, default_time="2-00:00:00")
    assert own.options.time == "3:00:00" and not any(n.startswith("--time") for n in own.notes)


NO_TIME = "no slurm.time: the partition's default time limit applies and may end a long stage part way"


def test_the_request_says_how_cpus_and_whole_nodes_were_decided():
    parts = slurm_site.parse_sinfo(SINFO)
    full = slurm_site.site_request(SlurmOptions(), load_params("8b").sft.hardware, parts, mem_gib=40)
    assert full.node_gpus == 8 and full.mem_gib is None
    assert full.lines == ["--cpus-per-task=96", "--exclusive", "--mem=0"]
    assert full.notes == ["cpus per task 96: all of a node's 96 CPUs (sinfo, partition gpu); set slurm.cpus_per_task "
                          "to choose", "--exclusive --mem=0: the job takes all 8 GPUs of each node", NO_TIME]
    one = load_params("workshop").sft.hardware          # 1 GPU: it may land on a 96-CPU/8-GPU or a 64-CPU/4-GPU node
    share = slurm_site.site_request(SlurmOptions(), one, parts, mem_gib=40)
    assert (share.exclusive, share.node_gpus, share.mem_gib) == (False, 8, 40)
    assert share.lines == ["--cpus-per-task=12", "--mem=40G"], "96/8 CPUs per GPU is the smaller share (64/4 is 16)"
    mem_note = ("--mem=40G: host memory for loading the model(s) (med42_utils.cluster_plan.host_memory_gib); add "
                "--mem=... to slurm.extra to choose")
    assert share.notes == ["cpus per task 12: its GPUs share of a node's 64 CPUs (sinfo, partition gpu); set "
                           "slurm.cpus_per_task to choose", NO_TIME, mem_note]
    assert slurm_site.site_request(SlurmOptions(), one, parts).notes == share.notes[:2], "no --mem asked, none noted"
    forced = slurm_site.site_request(SlurmOptions(exclusive=True), one, parts, mem_gib=40)
    assert forced.lines == ["--cpus-per-task=64", "--exclusive", "--mem=0"], "all CPUs of the smaller node"
    assert forced.notes == ["cpus per task 64: all of a node's 64 CPUs (sinfo, partition gpu); set slurm.cpus_per_task "
                            "to choose", "--exclusive --mem=0: forced by slurm.exclusive", NO_TIME]
    few = slurm_site.site_request(SlurmOptions(), one, slurm_site.parse_sinfo("small*|2|4|gpu:8|infinite|\n"))
    assert few.lines == ["--cpus-per-task=1"], "fewer CPUs than GPUs: still one CPU per task"


def test_without_sinfo_only_h100_nodes_are_known_to_hold_eight_gpus():
    dry = slurm_site.site_request(SlurmOptions(), load_params("8b").sft.hardware, None)
    assert (dry.node_gpus, dry.exclusive, dry.lines) == (8, True, ["--exclusive", "--mem=0"])
    assert dry.notes == ["cpus per task: not asked (sinfo could not say what a node has): the job gets the site's "
                         "default CPUs and its step every CPU the job has on the node; set slurm.cpus_per_task",
                         "--exclusive --mem=0: the job takes all 8 GPUs of each node", NO_TIME]
    cuda = Hardware(nodes=1, gpus_per_node=8, accelerator="cuda", launcher="accelerate",
                    accelerate_config="params/accelerate/single_gpu.yaml")
    other = slurm_site.site_request(SlurmOptions(), cuda, None, mem_gib=40)
    assert (other.node_gpus, other.exclusive, other.lines) == (None, False, ["--mem=40G"])
    cpu = Hardware(nodes=1, gpus_per_node=1, accelerator="cpu", launcher="inprocess")
    on_cpu = slurm_site.site_request(SlurmOptions(), cpu, None, mem_gib=40)
    assert (on_cpu.node_gpus, on_cpu.exclusive, on_cpu.mem_gib, on_cpu.lines) == (None, False, None, [])


def test_a_partition_whose_nodes_are_too_small_gets_no_whole_nodes_and_the_refusal_names_the_keys():
    parts, hw = slurm_site.parse_sinfo(SINFO), load_params("8b").sft.hardware     # 2 x 8 GPUs; debug's nodes have 3
    req = slurm_site.site_request(SlurmOptions(partition="debug"), hw, parts)
    assert (req.node_gpus, req.exclusive, req.cpus_per_task, req.lines) == (None, False, None, ["--partition=debug"])
    assert slurm_site.fit_problems(req, hw, parts, "sft") == [
        "sft asks for 2 node(s) x 8 GPUs and 1 CPUs per node; partition debug has 0 node(s) with that much (debug: "
        "1 x (32 CPUs, 3 GPUs); time limit 1 h); choose another partition (slurm.sft.partition), or fewer nodes/GPUs "
        "(sft.hardware) or CPUs (slurm.cpus_per_task)"]
    (dpo,) = slurm_site.fit_problems(req, hw, parts, "dpo")
    assert "(slurm.dpo.partition), or fewer nodes/GPUs (dpo.hardware) or" in dpo
    (judge,) = slurm_site.fit_problems(req, hw, parts, "judge")
    assert "(slurm.judge.partition), or fewer nodes/GPUs (sft.hardware.gpus_per_node) or" in judge, \
        "eval and judging jobs take the GPUs per node of sft.hardware (hardware.job_hardware)"


def test_a_request_exactly_at_the_partitions_nodes_and_time_fits():
    parts = slurm_site.parse_sinfo(SINFO)                 # gpu: 4 nodes of 8 GPUs, 48 h
    four = load_params("8b").sft.hardware.model_copy(update={"nodes": 4})
    at = slurm_site.site_request(SlurmOptions(time="2-00:00:00"), four, parts)
    assert slurm_site.fit_problems(at, four, parts, "sft") == []
    five = four.model_copy(update={"nodes": 5})
    (msg,) = slurm_site.fit_problems(slurm_site.site_request(SlurmOptions(), five, parts), five, parts, "sft")
    assert "asks for 5 node(s) x 8 GPUs and 96 CPUs per node; partition gpu has 4 node(s)" in msg
    never = slurm_site.site_request(SlurmOptions(time="UNLIMITED"), four, parts)
    assert slurm_site.fit_problems(never, four, parts, "sft") == [
        "slurm time UNLIMITED is over partition gpu's limit of 48 h; lower slurm.sft.time or choose a partition with "
        "a longer limit"]


def test_sbatch_refusals_point_at_the_params_key():
    msg = "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified"
    assert "slurm.account" in slurm_site.sbatch_hint(msg, "sft") and "MED42_SLURM='account=" in \
        slurm_site.sbatch_hint(msg, "sft")
    assert "slurm.partition" in slurm_site.sbatch_hint("Invalid partition name specified", "dpo")
    assert slurm_site.sbatch_hint("something else", "sft") == ""


# ---------------------------------------------------------------- the rendered script


def test_the_dry_run_shows_the_site_options_in_the_script(monkeypatch):
    monkeypatch.setenv("MED42_SLURM", "account=med42 partition=gpu sft.time=14:00:00 qos=high constraint=h100 "
                                      "extra=--mail-type=END")
    plan = plan_launch(load_params("8b"), "sft", "pytest-site", "med42_utils.sft.train", [])
    md = render_plan(plan)
    for line in ("--account=med42", "--partition=gpu", "--time=14:00:00", "--qos=high", "--constraint=h100",
                 "--mail-type=END", "--exclusive", "--mem=0"):
        assert f"#SBATCH {line}\n" in plan.slurm_script
        assert f"`{line}`" in md, "the dry run's summary line lists every option"
    assert "--cpus-per-task=96" not in plan.slurm_script
    assert plan.slurm_path.read_text() == plan.slurm_script


def test_one_gpu_jobs_do_not_take_whole_nodes():
    p = load_params("workshop")
    for plan in (plan_launch(p, "sft", "pytest-ws", "med42_utils.sft.train", []),
                 plan_job(p, "eval", "pytest-ws", plan_launch(p, "sft", "x", "m", []).slurm_path.parent, "m")):
        assert plan.slurm_script and "#SBATCH --exclusive" not in plan.slurm_script
        assert "--mem=0" not in plan.slurm_script


def test_the_script_carries_the_jobs_settings_and_never_a_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "ds cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf home"))
    plan = plan_launch(load_params("8b"), "sft", "pytest-env", "med42_utils.sft.train", [])
    s = plan.slurm_script
    assert "hf_secret_value_123" not in s and "HF_TOKEN" not in s.split("never from this file")[1]
    env = dict(line[len("export "):].split("=", 1) for line in s.splitlines()
               if line.startswith("export ") and line.split("=")[0][7:].startswith(("HF_", "MED42_")))
    assert shlex.split(env["HF_HOME"]) == [str(tmp_path / "hf home")]
    assert shlex.split(env["HF_DATASETS_CACHE"]) == [str(tmp_path / "ds cache")]
    assert env["HF_HUB_OFFLINE"] == "1", "jobs run offline unless this shell says HF_HUB_OFFLINE=0"
    assert {"MED42_OUTPUTS", "MED42_ROOT"} <= set(env)
    assert "srun --export=ALL " in s, "under SBATCH_EXPORT=NONE srun would drop the exports"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert "export HF_HUB_OFFLINE=0" in plan_launch(load_params("8b"), "sft", "pytest-env", "m", []).slurm_script


def test_paths_with_spaces_survive_the_script(tmp_path, monkeypatch):
    """A repo and outputs folder with spaces: bash runs the script's own lines (sbatch's parsing of the quoted
    #SBATCH --output is tested on the real SLURM) and the step sees the paths whole."""
    (tmp_path / "my repo").mkdir()
    root = fakeslurm.tmp_repo_root(tmp_path / "my repo")
    out = tmp_path / "my outputs"
    monkeypatch.setenv("MED42_ROOT", str(root))
    monkeypatch.setenv("MED42_OUTPUTS", str(out))
    plan = plan_launch(load_params("8b"), "sft", "pytest-space", "med42_utils.sft.train", [])
    assert shlex.split(plan.slurm_script.split("#SBATCH --output=")[1].splitlines()[0]) == \
        [f"{out}/8b/pytest-space/sft/logs/%x-%j.out"]
    # run the script with stand-ins for srun and scontrol that print what the step would see
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\n'
                                  'printf "%s\\n" "$PWD" "$MED42_OUTPUTS" "$MED42_ROOT"; printf "ARG<%s>\\n" "$@"\n')
    (bin_dir / "scontrol").write_text("#!/bin/bash\necho node1\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    script = tmp_path / "job.sh"
    script.write_text(plan.slurm_script)
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                       env={"PATH": f"{bin_dir}:/usr/bin:/bin", "SLURM_JOB_NODELIST": "node1"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == [str(root), str(out), str(root)]
    assert lines[3:] == ["ARG<bash>", "ARG<-c>", f"ARG<{plan.node_command}>"]
    assert f"--config_file {shlex.quote(str(root / 'params/accelerate/fsdp_8b.yaml'))}" in plan.node_command


# ---------------------------------------------------------------- before submitting


def test_each_job_names_what_it_reads():
    p = load_params("8b")
    sft = stage_needs(p, "r", "sft")
    assert [w for _, w, _ in sft.stages] == ["02's packed data"] and sft.models == [(p.model.base, "base model")]
    d2 = stage_needs(p, "r", "dpo_round2")
    assert [w for _, w, _ in d2.stages] == ["the dpo_round1 model"] and "-p dpo_round round1" in d2.stages[0][2]
    ev = stage_needs(p, "r", "eval")
    assert [w for _, w, _ in ev.stages] == [f"the {m} model" for m in p.eval.models if m != "base"]
    judge = stage_needs(p, "r", "judge")
    assert (p.judge.model, "judge model") in judge.models
    assert stage_needs(p, "r", "sft_samples", ["sft"]).models == []
    samples = stage_needs(p, "r", "dpo_samples", ["base", "dpo_round1"])  # 04's sample answers, not a round
    assert [w for _, w, _ in samples.stages] == ["the dpo_round1 model"] and samples.models == [(p.model.base,
                                                                                                "base model")]


def test_a_stage_whose_inputs_are_missing_is_refused_before_anything_is_submitted(fake_slurm_bin, monkeypatch):
    """70b SFT on a login node with no 70b data: refused naming 02 (and 01), and prefetch for the model; sbatch
    is never called. (The same through papermill on a real SLURM: tests/test_slurm_site_real.py.)"""
    state = fake_slurm_bin
    plan = plan_launch(load_params("70b"), "sft", "pytest-nodata", "med42_utils.sft.train", [])
    with pytest.raises(NotReady) as e:
        execute(plan)
    msg = str(e.value)
    assert "sft was not submitted" in msg
    assert "02's packed data is missing" in msg and "notebooks/02_packing.ipynb" in msg and "01_data_curation" in msg
    assert "python -m med42_utils.prefetch --size 70b" in msg and "Meta-Llama-3-70B-Instruct" in msg
    assert fakeslurm.calls(state, "sbatch") == [], "nothing was submitted"
    assert fakeslurm.calls(state) == [["ping"]], "only the placement's `scontrol ping` reached SLURM"
    assert not plan.job_record.exists()


def test_a_stage_with_its_inputs_passes_the_check(fake_slurm_bin, monkeypatch):
    from med42_utils.paths import run_dir

    p = load_params("tiny", {"sft.hardware.accelerator": "h100", "sft.hardware.launcher": "accelerate",
                             "sft.hardware.accelerate_config": "params/accelerate/single_gpu.yaml"})
    plan = plan_launch(p, "sft", "pytest-ready", "med42_utils.sft.train", [])
    assert any("packed data" in x for x in readiness_problems(plan, "sbatch"))
    (run_dir("tiny", "pytest-ready") / "packing").mkdir(parents=True)
    (run_dir("tiny", "pytest-ready") / "packing" / "manifest.json").write_text("{}")
    assert readiness_problems(plan, "sbatch") == [], "tiny's model is built locally: nothing to fetch"


@pytest.fixture
def fake_slurm_bin(tmp_path, monkeypatch):
    """The fake sbatch/squeue (tests/fakeslurm.py) first on PATH, to count calls; no allocation."""
    bin_dir, state = tmp_path / "bin", tmp_path / "slurm-state"
    fakeslurm.install(bin_dir, state)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(state))
    for var in ("SLURM_JOB_ID", "SLURM_JOB_NUM_NODES", "SLURM_NNODES", "SLURM_JOB_NODELIST"):
        monkeypatch.delenv(var, raising=False)
    return state


def test_before_a_submit_the_jobs_own_offline_setting_and_the_partition_fit_are_checked_and_not_before_srun(
        tmp_path, monkeypatch):
    from huggingface_hub import constants

    from med42_utils import preflight
    from med42_utils.launch import refuse_unless_ready

    monkeypatch.setattr(preflight, "model_cached", lambda repo_id: False)  # whatever this machine's cache holds
    plan = plan_launch(load_params("8b", {"slurm.partition": "debug"}), "sft", "pytest-ready8", "m", [])
    plan.capacity_problems = ["too big for a node"]
    _fake_sinfo(tmp_path / "bin", f"printf '%s' {shlex.quote(SINFO)}\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)      # this process is offline ...
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")                   # ... and the submitted job is told to go online
    submit = readiness_problems(plan, "sbatch")
    assert not any("prefetch" in p for p in submit), "the job may download the model: not a problem for sbatch"
    assert "too big for a node" in submit
    assert submit[-2].startswith("sft asks for 2 node(s) x 8 GPUs and 1 CPUs per node; partition debug has 0 node(s)")
    assert submit[-1].startswith("slurm time ") and "over partition debug's limit of 1 h; lower slurm.sft.time" in \
        submit[-1], "sinfo read at submit time: the plan's time (made without sinfo) is over debug's limit"
    here = readiness_problems(plan, "srun")
    assert any("python -m med42_utils.prefetch --size 8b" in p for p in here), "srun inherits this offline process"
    assert not any("partition debug" in p for p in here), "inside an allocation the partition is already chosen"
    with pytest.raises(NotReady, match=r"^sft was not submitted: it cannot succeed yet\.\n(.|\n)*partition debug has 0"):
        refuse_unless_ready(plan, "sbatch")
    with pytest.raises(NotReady) as e:
        refuse_unless_ready(plan, "srun")
    assert str(e.value) == "sft was not started: it cannot succeed yet.\n" + "\n".join(f"  - {p}" for p in here)
