"""The main job on an embedded default: what ``nlmr demo`` (and the README's first command) runs.

It grows with each capability. Today:

1. validate the sample registry;
2. list the catalogue;
3. round-trip every card through a Hugging Face README;
4. build a tiny real BERT with transformers (no download), ``nlmr add`` it to a copy of the
   registry with a local store, validate again and ``check-remote --deep`` it;
5. ``nlmr sync`` that registry to a read-only mirror (plain and hub-cache trees), check the
   mirror deeply, sync again (nothing moves) and show the users' environment;
6. load the model from the mirror offline, by path and by hub id through ``HF_HUB_CACHE``,
   and compare its outputs with the source model's;
7. as a laptop with no registry would: publish the store's catalogue, ``nlmr pull`` the
   model from the store into a fresh Hugging Face cache (again: nothing to do) and from
   the mirror into a plain directory, show ``nlmr info``'s load lines, and load both
   copies offline (by hub id from the user's own cache, and by path).

Everything the demo writes goes under its work directory (``./nlmr-demo`` by default).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nlmr.errors import RegistryNotFoundError

Echo = Callable[[str], object]


@dataclass(frozen=True)
class DemoResult:
    ok: bool
    registry: Path
    cards: int
    round_trips: int
    added: str | None


def default_registry() -> Path:
    """The checkout's ``registry/`` when nlmr runs from one, else the copy inside the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "registry", here / "_registry"):
        if (candidate / "models").is_dir() or (candidate / "datasets").is_dir():
            return candidate
    raise RegistryNotFoundError(
        "no sample registry found in this installation", hint="pass --registry DIR"
    )


_TINY_MODEL = """
import os, sys, torch
from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast
out = sys.argv[1]
torch.manual_seed(0)
cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=37, max_position_embeddings=64)
BertForMaskedLM(cfg).save_pretrained(out)
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(95)]
with open(os.path.join(out, "vocab.txt"), "w") as fh:
    fh.write("\\n".join(vocab) + "\\n")
BertTokenizerFast(vocab_file=os.path.join(out, "vocab.txt")).save_pretrained(out)
"""


def build_tiny_model(out: Path) -> bool:
    """Write a tiny random BERT with its tokenizer (needs torch + transformers); False if absent."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    # a child process keeps torch out of this one (and its threads out of our timings)
    subprocess.run(
        [sys.executable, "-c", _TINY_MODEL, str(out)],
        check=True,
        capture_output=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    return True


_LOAD = """
import hashlib, json, sys
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer
out = {}
for ref in sys.argv[1:]:
    tok = AutoTokenizer.from_pretrained(ref)
    model = AutoModelForMaskedLM.from_pretrained(ref)
    with torch.no_grad():
        logits = model(**tok("w1 w2 w3", return_tensors="pt")).logits
    out[ref] = hashlib.sha256(logits.numpy().tobytes()).hexdigest()
print(json.dumps(out))
"""


def _sync_and_load(work: Path, registry: Path, echo: Echo) -> bool:

    from nlmr.cli._output import human_bytes
    from nlmr.envfiles import render_shell, user_env
    from nlmr.sync.check import check_mirror
    from nlmr.sync.engine import sync
    from nlmr.target import default_target

    mirror = work / "mirror"
    echo(f"== 5/7 nlmr sync --root {mirror}")
    target = default_target(mirror)
    store = str(work / "store")
    first = sync(target, registry=registry, remote=store, progress=False)
    for ref in first.published:
        echo(f"  published {ref}")
    echo(
        f"  {human_bytes(first.transferred_bytes)} transferred and verified, "
        f"layouts shared by {first.link_mode}s, in {first.seconds:.2f} s"
    )
    checked = check_mirror(mirror, deep=True)
    echo(
        f"  check-mirror --deep: {'ok' if checked.ok else checked.problems} "
        f"({checked.revisions} revision(s), {checked.files} file(s))"
    )
    again = sync(target, registry=registry, remote=store, progress=False)
    echo(
        f"  sync again: {len(again.published)} published, {again.plan.unchanged} unchanged, "
        f"{again.transferred_bytes} bytes moved, {again.seconds:.3f} s"
    )
    echo("  users' environment (`nlmr env --root ...`):")
    for line in render_shell(user_env(target)).splitlines():
        if line.startswith("export"):
            echo(f"    {line}")
    ok = first.ok and checked.ok and again.ok and not again.published

    echo("== 6/7 load from the mirror, offline (HF_HUB_OFFLINE=1, HF_HUB_CACHE=mirror/hub)")
    plain = mirror / "models/nlmr-demo/tiny-bert"
    refs = [str(plain), "nlmr-demo/tiny-bert"]
    return _same_outputs(work, mirror / "hub", refs, echo) and ok


def _same_outputs(work: Path, hub_cache: Path, refs: list[str], echo: Echo) -> bool:
    """Load each of ``refs`` offline with ``HF_HUB_CACHE=hub_cache`` (one child process) and
    compare the outputs with the source model's."""
    import json

    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(hub_cache),
        "HF_HOME": str(work / "hf-home"),
        "TRANSFORMERS_VERBOSITY": "error",
    }
    source = str(work / "tiny-bert")
    done = subprocess.run(
        [sys.executable, "-c", _LOAD, source, *refs],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        echo("  load failed: " + done.stderr.strip().splitlines()[-1])
        return False
    digests = json.loads(done.stdout.strip().splitlines()[-1])
    ok = True
    for ref in refs:
        same = digests[ref] == digests[source]
        ok = ok and same
        echo(
            f"  from_pretrained({ref!r}) offline: "
            + ("outputs identical to the source model" if same else "OUTPUTS DIFFER")
        )
    return ok


def _pull_and_load(work: Path, registry: Path, echo: Echo) -> bool:

    from nlmr.cli._output import human_bytes
    from nlmr.config import settings
    from nlmr.entryinfo import describe
    from nlmr.puller import pull
    from nlmr.resolver import Resolver
    from nlmr.store.local import LocalStore
    from nlmr.storecatalogue import build_catalogue, upload_catalogue

    store, mirror = work / "store", work / "mirror"
    echo("== 7/7 nlmr pull, as a laptop with only the store's URL would")
    cat, problems = build_catalogue(registry, remote_url=str(store))
    url = upload_catalogue(LocalStore(store), cat)
    n = len(cat.entries)
    echo(f"  nlmr catalogue --upload: {url} ({n} entr{'y' if n == 1 else 'ies'})")
    cache = work / "user-hf-cache"
    from_store = settings(remote=str(store), mirrors=[])
    first = pull("nlmr-demo/tiny-bert", hf_cache=cache, settings=from_store, progress=False)
    echo(
        f"  pull into {cache}: {first.fetched} files, {human_bytes(first.fetched_bytes)} from "
        f"{first.source}, sha256-verified, in {first.seconds:.2f} s"
    )
    again = pull("nlmr-demo/tiny-bert", hf_cache=cache, settings=from_store, progress=False)
    echo(f"  pull again: {again.fetched} fetched, {again.present} already complete")
    both = settings(remote=str(store), mirrors=[mirror])
    plain = work / "pulled-tiny-bert"
    near = pull("nlmr-demo/tiny-bert", to=plain, settings=both, progress=False)
    how = ", ".join(f"{n} by {k}" for k, n in near.how.items())
    echo(f"  pull --to {plain}: from {near.source} ({how})")
    linked = pull("nlmr-demo/tiny-bert", link=True, settings=both)
    echo(f"  pull --link: {linked.path}")
    info = describe(Resolver(both), "nlmr-demo/tiny-bert")
    echo("  nlmr info nlmr-demo/tiny-bert, to load it:")
    for what, line in info.lines:
        echo(f"    # {what}")
        for text in line.splitlines():
            echo(f"    {text}")
    ok = not problems and first.ok and again.complete and near.ok and linked.path != ""
    return _same_outputs(work, cache, ["nlmr-demo/tiny-bert", str(plain)], echo) and ok


def run_demo(
    registry: str | Path | None, *, workdir: str | Path = "nlmr-demo", echo: Echo = print
) -> DemoResult:
    """Run every step, printing what happens; keeps going after a failed step."""
    from nlmr.add import add
    from nlmr.checkremote import check_remote
    from nlmr.cli._output import human_bytes, table
    from nlmr.hfreadme import card_from_readme, render_readme
    from nlmr.listing import list_entries
    from nlmr.registry import Registry
    from nlmr.validate import validate

    source = Path(registry) if registry else default_registry()
    work = Path(workdir).resolve()
    echo(f"== 1/7 validate {source}")
    report = validate([source])
    for problem in report.problems:
        echo("  " + problem.format())
    echo(
        f"  {report.cards} card(s), {len(report.errors)} error(s), "
        f"{len(report.warnings)} warning(s)"
    )

    echo("== 2/7 catalogue")
    listing = list_entries(source)
    rows = [[e.id, e.type, ",".join(e.languages), e.license, e.status] for e in listing.entries]
    echo(table(["ID", "TYPE", "LANGUAGES", "LICENSE", "STATUS"], rows))

    echo("== 3/7 card -> Hugging Face README.md -> card")
    reg = Registry(source)
    same = 0
    for summary in listing.entries:
        card = reg.load(summary.id)
        back = card_from_readme(render_readme(card))
        same += back == card
        echo(f"  {summary.id}: {'identical' if back == card else 'DIFFERS'}")
    ok = report.ok() and not listing.invalid and same == len(listing.entries)

    echo(f"== 4/7 nlmr add a tiny model to a copy of the registry ({work})")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    demo_registry = work / "registry"
    shutil.copytree(source, demo_registry)
    added = None
    if not build_tiny_model(work / "tiny-bert"):
        echo("  skipped: needs torch and transformers (pip install 'nlmr[hf]')")
    else:
        result = add(
            str(work / "tiny-bert"),
            "nlmr-demo/tiny-bert",
            registry=demo_registry,
            remote=str(work / "store"),
            progress=False,
            card_fields={
                "title": "Tiny BERT (demo)",
                "summary": "A tiny random BERT built by nlmr demo.",
                "license": "CC0-1.0",
                "languages": ["nb", "nn"],
                "creators": [{"name": "nlmr demo"}],
                "maintainers": ["nlmr-maintainers"],
            },
        )
        added = f"{result.entry_id}@{result.revision}"
        echo(
            f"  added {added}: {result.files} files, {human_bytes(result.bytes)}, "
            f"{len(result.uploaded)} objects uploaded to {result.remote}"
        )
        for path in result.written:
            echo(f"  wrote {path}")
        after = validate([demo_registry])
        remote = check_remote(
            [demo_registry / "models/nlmr-demo"], remote=str(work / "store"), deep=True
        )
        echo(
            f"  validate: {len(after.errors)} error(s); check-remote --deep: "
            f"{'ok' if remote.ok else [p.format() for p in remote.problems]}"
        )
        ok = ok and after.ok() and remote.ok and not result.problems
    if added is not None:
        ok = _sync_and_load(work, demo_registry, echo) and ok
        ok = _pull_and_load(work, demo_registry, echo) and ok
    else:
        echo("== 5/7 sync, 6/7 load, 7/7 pull: skipped (no model was added)")
    echo("demo " + ("succeeded" if ok else "found problems (see above)"))
    return DemoResult(ok, source, report.cards, same, added)
