"""``python -m security.keys_tool``: the payload-codec keys of each process (security/codec.py;
docs/operations.md, "Issuing keys" and "Rotating keys").

* ``init --out FILE``: the *authority* ring, every role's key and the operators' master key.
  Workers and the codec server hold it; keep the master copy where only key administrators
  can read it.
* ``issue --authority FILE --as receiver|edge|operator:<name> --out FILE``: what one process
  (or one operator) holds: its own sealing key, nothing else.
* ``rotate --authority FILE --role ROLE``: a fresh active key for a role, the old ones kept
  for decoding; issue the role's files again afterwards.
* ``show FILE``: who a file seals as and which key ids it holds (never a key).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from security.codec import CodecKeyError, add_key, generate_keys_file, issue_keys_file, load_ring
from security.sealing import OPERATOR, WORKER, role_of


def _init(args: argparse.Namespace) -> str:
    if args.out.exists() and not args.force:
        raise CodecKeyError(f"{args.out} exists: it may be the only copy of keys in use (--force to replace it)")
    generate_keys_file(args.out)
    return f"authority ring written to {args.out}: give it to the workers and the codec server only"


def _issue(args: argparse.Namespace) -> str:
    sealer: str = args.sealer
    if role_of(sealer) is None:
        raise CodecKeyError(f"--as {sealer!r}: one of receiver, edge, operator:<name> (letters, digits, . _ @ -)")
    if sealer in (WORKER, OPERATOR):
        raise CodecKeyError(
            f"--as {sealer}: workers hold the authority ring itself, and an operator's key is issued "
            "to one person (operator:<name>)"
        )
    issue_keys_file(args.authority, sealer, args.out)
    return f"{sealer} keys written to {args.out}"


def _rotate(args: argparse.Namespace) -> str:
    kid = add_key(args.authority, args.role)
    what = "every operator's file" if args.role == OPERATOR else f"the {args.role} files"
    if args.role == WORKER:
        what = "nothing (workers and the codec server hold the authority ring: roll it out)"
    return f"new active {args.role} key {kid} in {args.authority}; issue {what} again"


def _show(args: argparse.Namespace) -> str:
    ring = load_ring(args.file)
    kids = ", ".join(f"{kid} ({key.role}{', master' if key.derive else ''})" for kid, key in sorted(ring.keys.items()))
    active = ", ".join(f"{role}={kid}" for role, kid in sorted(ring.active.items()))
    return f"seals as {ring.seal_as}; active: {active}; keys: {kids}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m security.keys_tool", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="a new authority ring (every role's key)")
    init.add_argument("--out", type=Path, required=True)
    init.add_argument("--force", action="store_true", help="replace an existing file")
    init.set_defaults(func=_init)
    issue = sub.add_parser("issue", help="one process's or one operator's keys file")
    issue.add_argument("--authority", type=Path, required=True, help="the authority ring")
    issue.add_argument("--as", dest="sealer", required=True, help="receiver, edge or operator:<name>")
    issue.add_argument("--out", type=Path, required=True)
    issue.set_defaults(func=_issue)
    rotate = sub.add_parser("rotate", help="a fresh active key for a role in the authority ring")
    rotate.add_argument("--authority", type=Path, required=True)
    rotate.add_argument("--role", required=True, choices=["edge", "receiver", "worker", "operator"])
    rotate.set_defaults(func=_rotate)
    show = sub.add_parser("show", help="who a keys file seals as and its key ids")
    show.add_argument("file", type=Path)
    show.set_defaults(func=_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        print(args.func(args))
    except CodecKeyError as err:
        print(f"keys_tool: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
