#!/usr/bin/env python3
"""
Cold deploy: a bare container to "smoke passed" with salt-ssh, broken down,
and the formula's venv installer against a plain ``pip install litellm[proxy]``.

Boots a fresh systemd-nspawn host (the cached rootfs of the harness's default
suite, Debian 13 trixie: OS packages cached, no LiteLLM, cold uv and pip caches), starts two stand-in Ollama
servers and runs ``salt-ssh gateway state.apply litellm``. The apply is split
by the states' own durations: validate, preflight, OS packages (user, group,
pkg), venv install (the hashed lock with uv), config (rendered, checked by
LiteLLM, written), start to ready (unit, daemon-reload, service, readiness),
smoke; "ship/thin + render" is the rest of the wall time (ssh, shipping the
thin and the state tarball, rendering). salt-ssh's thin itself is built on
the controller before the run (once per controller and Salt version, as a
controller that has deployed before has it) and shown apart. Then, in the same container,
the baseline: ``python3 -m venv`` + ``pip install 'litellm[proxy]==1.108.7'``
(same version as the lock, pip's defaults, cold cache, same index and CA).
The formula runs first so any warm-up (the index's proxy, the page cache)
favours the baseline. Each round uses a new container.

The deploy baseline (issue 17): the seed's Ansible role as one playbook
(bench/_ansible.py: system user, ``python3 -m venv``, ``pip install
'litellm[proxy]==1.108.7'``, config.yaml and litellm.env 0640, a hardened
unit, daemon-reload, start, ``/health/readiness``), ansible-core from the
package index in the bench's own venv, over ssh to a fresh container of the
same kind, after the formula's round (before it in even rounds: the
machine's load drifts). Its time is container boot to ready
(no smoke test: the formula's time includes one).

The venv phase is split by the formula's own step timings (the state's
comment): creating the venv and bootstrapping uv, installing the packages,
compiling the bytecode of the lock's compile list (plain pip compiles every
file; the service's tests check it compiles nothing at start), and, on an upgrade
only, the release's import check (on a cold deploy the config check, which
imports the proxy from the new release, stands for it).

    .venv/bin/python bench/deploy.py [--rounds 1]

Goals: venv install <= 1/5 of plain pip (issue 5); cold deploy <= 0.4x the
Ansible baseline (issue 17). Exit status 0 when both are met in every round.
``--no-ansible`` leaves the Ansible baseline out (then the goal is issue 5's 60 s).
"""

import argparse
import json
import re
import sys
import time
import urllib.request

import _ansible
from _lib import REPO, VENV_BIN, BenchSite, header, median, table, verdict

VERSION = "1.108.7"
GOAL_VENV_RATIO = 0.2
GOAL_DEPLOY_S = 60.0
GOAL_ANSIBLE_RATIO = 0.4
CA_BUNDLE = "/etc/litellm-test/ca-bundle.crt"
PHASES = (
    ("validate", ("litellm-validate",)),
    ("preflight", ("litellm-preflight",)),
    ("OS packages (user, pkg)", ("litellm-package-install-group", "litellm-package-install-user",
                                 "litellm-package-install-pkg")),
    ("venv install", ("litellm-package-install-lock", "litellm-package-install-venv")),
    ("config (checked by LiteLLM)", ("litellm-config",)),
    ("start to ready", ("litellm-service",)),
    ("smoke", ("litellm-smoke",)),
)


def phase_of(state_id):
    for label, prefixes in PHASES:
        if state_id.startswith(prefixes):
            return label
    return "other states"


def plain_pip(site):
    """The baseline in the same container: a venv and pip's own install of litellm[proxy]."""
    env = {
        "PIP_CERT": "/etc/litellm-test/ca-bundle.crt",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
    }
    t0 = time.monotonic()
    site.host.run(["python3", "-m", "venv", "/opt/plain-pip"], env=env, timeout=600)
    t1 = time.monotonic()
    site.host.run(
        ["/opt/plain-pip/bin/pip", "install", "-q", f"litellm[proxy]=={VERSION}"], env=env, timeout=1800
    )
    t2 = time.monotonic()
    size = site.host.run(["du", "-sm", "/opt/plain-pip"]).stdout.split()[0]
    return {"venv": t1 - t0, "install": t2 - t1, "total": t2 - t0, "size_mb": int(size)}


def ansible_round(index, venv):
    """The seed-style Ansible deployment on a fresh container: boot + playbook, until ready."""
    with BenchSite(f"ansible{index}") as site:
        result = _ansible.run(site, VERSION, CA_BUNDLE, venv)
        if result["rc"] != 0:
            raise SystemExit(f"the Ansible baseline failed (exit {result['rc']}):\n{result['text'][-4000:]}")
        request = urllib.request.Request(f"{site.url}/v1/models",
                                         headers={"Authorization": f"Bearer {site.master_key}"})
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 -- loopback
            models = sorted(m["id"] for m in json.load(response)["data"])
        return {"boot": site.timings["boot"], "playbook": result["total"], "phases": result["phases"],
                "models": models}


def one_round(index):
    # ssh ControlMaster as an operator's salt-ssh has it (etc/salt/master's ssh_options, kept by
    # scripts/new-site's roster) and as the Ansible baseline has it (its default ControlPersist)
    with BenchSite(f"deploy{index}", control_master=True) as site:
        run = site.salt_ssh("state.apply", "litellm")
        run.assert_ok("the cold deploy")
        phases = {label: 0.0 for label, _ in PHASES}
        for state_id, state in run.states.items():
            label = phase_of(state_id)
            phases[label] = phases.get(label, 0.0) + float(state.get("duration") or 0) / 1000
        phases["ship/thin + render"] = run.elapsed - sum(phases.values())
        formula_size = site.host.run(["du", "-sm", "/opt/litellm/venv/"]).stdout.split()[0]
        step_names = r"venv and uv|packages and bytecode|packages|bytecode|import check"
        steps = dict(
            (step, float(value))
            for step, value in re.findall(rf"({step_names}) ([\d.]+) s",
                                          run.states["litellm-package-install-venv-installed"]["comment"])
        )
        baseline = plain_pip(site)
        return {
            "boot": site.timings["boot"],
            "thin": site.timings["thin"],
            "apply": run.elapsed,
            "phases": phases,
            "changed": len(run.changed()),
            "formula_size_mb": int(formula_size),
            "steps": steps,
            "pip": baseline,
        }


def report(index, r):
    """Print one round's tables; True when its goals are met."""
    print(f"\nround {index}: {r['changed']} states changed")
    print_phases(r)
    print()
    return print_goals(r)


def print_phases(r):
    """The round's time per phase, the formula's beside the Ansible baseline's."""
    total = r["boot"] + r["apply"]
    ans = r.get("ansible")
    ans_total = ans["boot"] + ans["playbook"] if ans else None
    rows = [["container boot (systemd up, sshd)", f"{r['boot']:.1f}", "", f"{ans['boot']:.1f}" if ans else ""]]
    thin_row = ["salt-ssh thin, built on the controller (once per Salt version; not in the total)",
                f"{r['thin']:.1f}", "", ""]
    order = ["ship/thin + render"] + [label for label, _ in PHASES] + ["other states"]
    ans_phases = dict(ans["phases"]) if ans else {}
    if ans:
        ans_phases["ship/thin + render"] = ans["playbook"] - sum(ans["phases"].values())
        ans_phases["config (checked by LiteLLM)"] = ans_phases.pop("config", 0.0)  # written, not checked
    for label in order:
        if label in r["phases"] and (label != "other states" or r["phases"][label]):
            other = ans_phases.get(label)
            rows.append([label, f"{r['phases'][label]:.1f}", f"{r['phases'][label] / total:.0%}",
                         f"{other:.1f}" if other is not None else ("-" if ans else "")])
    rows.append(["state.apply / ansible-playbook (wall)", f"{r['apply']:.1f}", "",
                 f"{ans['playbook']:.1f}" if ans else ""])
    rows.append(["bare container to smoke passed / to ready", f"{total:.1f}", "100%",
                 f"{ans_total:.1f}" if ans else ""])
    rows.append(thin_row)
    table(["phase", "formula s", "share", "Ansible s" if ans else ""], rows)
    if ans:
        print("(Ansible: ship + render = ssh, fact gathering and each task's module transfer, the rest of the "
              f"playbook's wall time; it writes its config unchecked; models served: {', '.join(ans['models'])})")


def print_goals(r):
    """The round's goals (the venv against plain pip, the deploy against Ansible or a time); True when met."""
    total = r["boot"] + r["apply"]
    ans = r.get("ansible")
    ans_total = ans["boot"] + ans["playbook"] if ans else None
    venv_s = r["phases"]["venv install"]
    pip = r["pip"]
    # plain pip neither checks the import nor needs to: the goal compares the installs
    check_s = r["steps"].get("import check", 0.0)
    install_s = venv_s - check_s
    venv_ratio = install_s / pip["total"]
    if ans:
        deploy_ratio = total / ans_total
        deploy_ok = deploy_ratio <= GOAL_ANSIBLE_RATIO
        deploy_row = ["cold deploy: formula to smoke passed / seed's Ansible role to ready",
                      f"{total:.1f} / {ans_total:.1f}", "", f"{deploy_ratio:.2f}", f"<= {GOAL_ANSIBLE_RATIO:.2f}",
                      verdict(deploy_ok)]
        first_row = ["  the same with the thin built (a controller's first host)",
                     f"{total + r['thin']:.1f} / {ans_total:.1f}", "", f"{(total + r['thin']) / ans_total:.2f}",
                     "", ""]
    else:
        deploy_ok = total <= GOAL_DEPLOY_S
        deploy_row = ["cold deploy, bare container to smoke passed", f"{total:.1f}", "", "",
                      f"<= {GOAL_DEPLOY_S:.0f} s", verdict(deploy_ok)]
        first_row = ["  the same with the thin built (a controller's first host)", f"{total + r['thin']:.1f}",
                     "", "", "", ""]
    venv_ok = venv_ratio <= GOAL_VENV_RATIO
    table(
        ["what", "seconds", "venv MB", "ratio", "goal", "verdict"],
        [
            [f"plain pip install litellm[proxy]=={VERSION} (venv {pip['venv']:.1f} s + pip "
             f"{pip['install']:.1f} s)", f"{pip['total']:.1f}", pip["size_mb"], "1.00", "", ""],
            ["formula venv: hashed lock, uv, bytecode (" + ", ".join(
                f"{k} {v:.1f} s" for k, v in r["steps"].items() if k != "import check") + ")",
             f"{install_s:.1f}", r["formula_size_mb"], f"{venv_ratio:.2f}", f"<= {GOAL_VENV_RATIO:.2f}",
             verdict(venv_ok)],
            ["+ the release's import check (upgrades only)", f"{check_s:.1f}", "",
             f"{venv_s / pip['total']:.2f}", "", ""],
            deploy_row,
            first_row,
        ],
    )
    return deploy_ok and venv_ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="fresh containers, one deploy each (default 1)")
    parser.add_argument("--no-ansible", action="store_true", help="leave the Ansible baseline out")
    args = parser.parse_args(argv)
    header("cold deploy (salt-ssh, bare container to smoke passed) vs the seed's Ansible role; venv vs plain pip")
    venv = None if args.no_ansible else _ansible.ensure_venv(REPO, VENV_BIN / "uv")
    t0 = time.monotonic()
    rounds = []
    for index in range(1, args.rounds + 1):
        # odd rounds the formula first, even rounds the Ansible baseline first: the machine's load drifts
        ansible = None
        if venv is not None and index % 2 == 0:
            ansible = ansible_round(index, venv)
            print(f"round {index}: Ansible baseline done ({time.monotonic() - t0:.0f} s)", flush=True)
        result = one_round(index)
        print(f"round {index}: formula done ({time.monotonic() - t0:.0f} s)", flush=True)
        if venv is not None and ansible is None:
            ansible = ansible_round(index, venv)
            print(f"round {index}: Ansible baseline done ({time.monotonic() - t0:.0f} s)", flush=True)
        result["ansible"] = ansible
        rounds.append(result)

    ok = True
    for index, r in enumerate(rounds, 1):
        ok = report(index, r) and ok
    if len(rounds) > 1 and all(r.get("ansible") for r in rounds):
        formula = [r["boot"] + r["apply"] for r in rounds]
        ansible = [r["ansible"]["boot"] + r["ansible"]["playbook"] for r in rounds]
        ratios = [f / a for f, a in zip(formula, ansible)]
        print(f"\n{len(rounds)} rounds: formula {', '.join(f'{v:.1f}' for v in formula)} s; Ansible "
              f"{', '.join(f'{v:.1f}' for v in ansible)} s; ratio {', '.join(f'{v:.2f}' for v in ratios)} "
              f"(median {median(ratios):.2f})")
    print(f"\ntotal bench time {time.monotonic() - t0:.0f} s; verdict: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
