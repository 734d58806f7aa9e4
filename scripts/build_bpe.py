"""Re-encode an original tiktoken rank file into finops' compact form (``finops/tokens/data``).

    python scripts/build_bpe.py o200k_base.tiktoken[.gz] [--out finops/tokens/data]

The input's SHA-256 must be the one tiktoken expects for that encoding (so only OpenAI's own
vocabulary is accepted); the output's SHA-256 must then be the one pinned in
``finops/tokens/encodings.py`` (printed either way).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from finops.tokens import encodings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--out", type=Path, default=encodings.DATA_DIR)
    args = parser.parse_args()
    name = args.source.name.split(".")[0]
    spec = encodings._SPECS.get(name)
    if spec is None:
        sys.exit(f"{args.source}: not one of {', '.join(encodings.ENCODINGS)}")
    raw = args.source.read_bytes()
    if args.source.suffix == ".gz":
        raw = gzip.decompress(raw)
    if hashlib.sha256(raw).hexdigest() != spec.tiktoken_sha256:
        sys.exit(f"{args.source}: SHA-256 is not tiktoken's {spec.tiktoken_sha256}")
    ranks: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    data = encodings.encode_ranks(ranks)
    if encodings.decode_ranks(data) != ranks or encodings.tiktoken_text(ranks) != raw:
        sys.exit("round trip failed: the compact form does not reproduce the source")
    digest = hashlib.sha256(data).hexdigest()
    out = args.out / spec.file
    out.write_bytes(data)
    pinned = "matches" if digest == spec.sha256 else f"differs from the pinned {spec.sha256}"
    print(f"{out}: {len(data)} bytes, SHA-256 {digest} ({pinned})")


if __name__ == "__main__":
    main()
