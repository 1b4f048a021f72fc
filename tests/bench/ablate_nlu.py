"""What the NLU mechanisms add: models trained without one of them, played over REST.

    python -m tests.bench.ablate_nlu [--set dev] [--only variants,pinyin]

For each ablation a model is trained from a temporary copy of config.yml and
data/ with the mechanism removed (the generated variants file, or the pinyin
featurizer), served on a free port beside its own action server, and the
conversation set is played against it; the full model (build/current_model) is
played the same way. A measurement, not a test: it takes one training per
ablation (about 6 minutes each on the 2-core machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import yaml

from bot import evaluation

ROOT = evaluation.ROOT
RASA = ROOT / ".venv" / "bin" / "rasa"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _without_variants(work: Path) -> None:
    (work / "data" / "generated" / "variants.yml").unlink(missing_ok=True)


def _without_pinyin(work: Path) -> None:
    path = work / "config.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["pipeline"] = [c for c in config["pipeline"] if not c["name"].endswith("PinyinCountVectorsFeaturizer")]
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")


ABLATIONS = {"variants": _without_variants, "pinyin": _without_pinyin}


def train(name: str, ablate) -> Path:
    """A model trained with one mechanism removed; its path under build/ablate/."""
    out = ROOT / "build" / "ablate"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "data", work / "data")
        shutil.copy(ROOT / "config.yml", work / "config.yml")
        ablate(work)
        env = {**os.environ, "RASA_MAX_CACHE_SIZE": "0"}
        subprocess.run([str(RASA), "train", "--config", str(work / "config.yml"), "--domain", str(ROOT / "domain.yml"),
                        "--data", str(work / "data"), "--out", str(out), "--fixed-model-name", f"no-{name}", "--quiet"],
                       cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return out / f"no-{name}.tar.gz"


def play(model: Path, set_name: str) -> dict:
    """Serve `model` on free ports, play the set, stop the servers; the summary."""
    port, actions = _free_port(), _free_port()
    env = {**os.environ, "RASA_PORT": str(port), "ACTIONS_PORT": str(actions), "RASA_MODEL": str(model)}
    serve = [str(ROOT / "scripts" / "serve.sh")]
    subprocess.run([*serve, "start"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        results = asyncio.run(evaluation.run_suite(f"http://127.0.0.1:{port}", evaluation.load_set(set_name)))
        return evaluation.summarize(results, set_name)
    finally:
        subprocess.run([*serve, "stop"], cwd=ROOT, env=env, check=False)


def _line(name: str, s: dict) -> str:
    def pct(v: float | None) -> str:
        return "—" if v is None else f"{100 * v:.1f}%"
    return f"{name:<14} answered {pct(s['answered'])}  oos refused {pct(s['oos_refused'])}  follow-up {pct(s['followup'])}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--set", dest="set_name", default="dev")
    parser.add_argument("--only", default=",".join(ABLATIONS))
    args = parser.parse_args(argv)
    full = Path((ROOT / "build" / "current_model").read_text().strip())
    rows = [("full", play(ROOT / full if not full.is_absolute() else full, args.set_name))]
    for name in args.only.split(","):
        rows.append((f"no {name}", play(train(name, ABLATIONS[name]), args.set_name)))
    for name, summary in rows:
        print(_line(name, summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
