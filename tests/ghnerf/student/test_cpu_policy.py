"""The CPU policy: OpenMP's wait policy set before torch loads it (the user's value kept), what is in effect
recorded, threads from the environment or the CPUs this process may use."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from ghnerf.student.cpu_policy import (
    WAIT_POLICY,
    apply_inference_policy,
    current_policy,
    inference_threads,
    openmp_loaded,
    prepare_process,
)

REPO = Path(__file__).resolve().parents[3]


def test_set_before_openmp_is_in_effect_and_recorded():
    env = {}
    assert prepare_process(env, loaded=False) == "ghnerf"
    assert env["OMP_WAIT_POLICY"] == WAIT_POLICY == "PASSIVE"
    assert current_policy(2, env).record() == {"threads": 2, "wait_policy": "PASSIVE", "wait_policy_source": "ghnerf"}


def test_the_users_value_is_kept():
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert prepare_process(env, loaded=False) == "environment"
    assert env == {"OMP_WAIT_POLICY": "ACTIVE"}
    assert current_policy(1, env).wait_policy == "ACTIVE"
    assert current_policy(1, {}).record() == {"threads": 1, "wait_policy": "unset", "wait_policy_source": "unset"}


def test_too_late_for_this_process_but_in_effect_for_its_children():
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    assert openmp_loaded()  # this test process imported torch
    assert prepare_process(env, loaded=openmp_loaded()) == "not in effect"
    child = subprocess.run([sys.executable, "-c", "from ghnerf.student.cpu_policy import current_policy;"
                            "import json; print(json.dumps(current_policy(1).record()))"],
                           env=env | {"PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=True)
    assert json.loads(child.stdout)["wait_policy_source"] == "ghnerf"


def test_a_fresh_process_sets_it_before_torch_loads_openmp():
    code = ("from ghnerf.student.cpu_policy import openmp_loaded, prepare_process\n"
            "before = openmp_loaded(); source = prepare_process()\n"
            "import torch; torch.ones(1)\n"
            "from ghnerf.student.cpu_policy import apply_inference_policy\n"
            "import json; print(json.dumps([before, source, openmp_loaded(), apply_inference_policy('cpu').record()]))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env=env | {"PYTHONPATH": str(REPO)}, capture_output=True,
                         text=True, check=True)
    before, source, after, record = json.loads(out.stdout)
    assert (before, source, after) == (False, "ghnerf", True)
    assert record["wait_policy"] == "PASSIVE" and record["wait_policy_source"] == "ghnerf"
    assert record["threads"] == len(os.sched_getaffinity(0))


def test_threads_from_the_environment_or_the_cpus_available():
    assert inference_threads({"OMP_NUM_THREADS": "3"}) == 3
    assert inference_threads({"OMP_NUM_THREADS": "no"}) == inference_threads({}) == len(os.sched_getaffinity(0))
    before = torch.get_num_threads()
    try:
        policy = apply_inference_policy(torch.device("cpu"))
        assert policy.threads == torch.get_num_threads() == inference_threads()
    finally:
        torch.set_num_threads(before)
    assert apply_inference_policy("meta") is None  # nothing changed off the CPU
