"""A stand-in for Slurm's ``sbatch`` that runs each submitted job at once, honouring ``afterok`` dependencies.

Every call is appended to ``$FAKE_SBATCH_LOG`` (JSON lines: id, options, script, arguments, exit codes). A job
whose ``--dependency=afterok:ID[:ID...]`` names a job that did not succeed is not run (Slurm would keep it pending
forever, ``DependencyNeverSatisfied``). ``--array=0-N`` runs the script once per index with
``SLURM_ARRAY_TASK_ID``; stdout/stderr go to ``--output`` (``%j``, ``%A``, ``%a`` and ``%x`` expanded). With
``--parsable`` the job id is printed alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def main() -> int:
    log = Path(os.environ["FAKE_SBATCH_LOG"])
    history = [json.loads(x) for x in log.read_text().splitlines()] if log.is_file() else []
    job_id = str(1000 + len(history))
    args = sys.argv[1:]
    options: dict[str, str] = {}
    while args and args[0].startswith("--"):
        key, _, value = args.pop(0)[2:].partition("=")
        options[key] = value
    script, script_args = args[0], args[1:]
    row = {"id": job_id, "options": options, "script": script, "args": script_args, "codes": [], "ran": False}
    ok = {h["id"] for h in history if h["ran"] and all(c == 0 for c in h["codes"])}
    deps = options.get("dependency", "")
    needed = deps.split(":")[1:] if deps.startswith("afterok:") else []
    if all(d in ok for d in needed):
        row["ran"] = True
        first, _, last = options.get("array", "").partition("-")
        indices = range(int(first), int(last) + 1) if options.get("array") else [None]
        for index in indices:
            env = dict(os.environ, SLURM_JOB_ID=job_id)
            out = options.get("output", f"slurm-{job_id}.out").replace("%j", job_id).replace("%A", job_id)
            out = out.replace("%x", options.get("job-name", "job"))
            if index is not None:
                env["SLURM_ARRAY_TASK_ID"] = str(index)
                out = out.replace("%a", str(index))
            with open(out, "w", encoding="utf-8") as f:
                code = subprocess.run(["bash", script, *script_args], env=env, stdout=f, stderr=subprocess.STDOUT)
            row["codes"].append(code.returncode)
    with log.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
    print(job_id if "parsable" in options else f"Submitted batch job {job_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
