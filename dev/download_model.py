"""Download a pretrained GPT-2 from the Hugging Face hub into models/<name>/ (standard library only).

    python dev/download_model.py small            # -> models/gpt2/
    python dev/download_model.py xl               # -> models/gpt2-xl/ (6.4 GB)

Sizes: small = gpt2 (124M), medium = gpt2-medium (355M), large = gpt2-large (774M), xl = gpt2-xl (1558M).
Fetches config.json, model.safetensors, vocab.json, merges.txt, tokenizer.json, tokenizer_config.json and
generation_config.json from https://huggingface.co/<name>/resolve/<revision>/<file>. Downloads resume: bytes go to
<file>.part, continued with an HTTP Range request when rerun, and renamed when complete; files already present are
skipped. model.safetensors is checked against the sha256 the hub reports (X-Linked-Etag) when it reports one.

Environment: HF_TOKEN (sent as a bearer token to the hub, never to the CDN it redirects to), HF_ENDPOINT (default
https://huggingface.co, e.g. a mirror).
"""

import argparse
import os
import sys
import urllib.error

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
import lnfree_data as D  # noqa: E402

SIZES = {"small": "gpt2", "medium": "gpt2-medium", "large": "gpt2-large", "xl": "gpt2-xl"}
# (file, required): a missing optional file (HTTP 404) is reported and skipped.
FILES = [
    ("config.json", True),
    ("generation_config.json", False),
    ("tokenizer_config.json", False),
    ("vocab.json", True),
    ("merges.txt", True),
    ("tokenizer.json", False),
    ("model.safetensors", True),
]
VERIFIED = {"model.safetensors"}


def file_url(endpoint, repo, revision, filename):
    return f"{endpoint.rstrip('/')}/{repo}/resolve/{revision}/{filename}"


def download_model(repo, out_dir, endpoint="https://huggingface.co", revision="main", token=None, files=None,
                   verify=True, retries=3, progress=True):
    """Download `files` (default FILES) of hub model `repo` into out_dir; returns {file: path}."""
    headers = D.request_headers(token=token)
    wanted = [(f, req) for f, req in FILES if files is None or f in files]
    done = {}
    for filename, required in wanted:
        dest = os.path.join(out_dir, filename)
        url = file_url(endpoint, repo, revision, filename)
        if os.path.exists(dest):
            if progress:
                print(f"{filename}: already complete ({os.path.getsize(dest):,} bytes), skipped", file=sys.stderr)
            done[filename] = dest
            continue
        sha, size = None, None
        if verify and filename in VERIFIED:
            try:
                meta = D.head_metadata(url, headers)
            except urllib.error.HTTPError as e:
                if e.code == 404 and not required:
                    print(f"{filename}: not in {repo}, skipped", file=sys.stderr)
                    continue
                hint = " (set HF_TOKEN for gated or private repositories)" if e.code in (401, 403) else ""
                raise D.DownloadError(f"{url}: HTTP {e.code} {e.reason}{hint}") from None
            except OSError as e:
                raise D.DownloadError(f"{url}: {e}") from None
            sha = D.sha256_from_etag(meta.get("x-linked-etag"))
            linked = meta.get("x-linked-size")
            size = int(linked) if linked and linked.isdigit() else None
            if progress:
                commit = meta.get("x-repo-commit")
                print(f"{filename}: " + (f"sha256 {sha}" if sha else "the hub reports no sha256, not verified") +
                      (f", revision {commit}" if commit else ""), file=sys.stderr)
        try:
            D.download_file(url, dest, headers=headers, expected_sha256=sha, expected_size=size, retries=retries,
                            progress=progress)
        except D.DownloadError as e:
            if not required and "HTTP 404" in str(e):
                print(f"{filename}: not in {repo}, skipped", file=sys.stderr)
                continue
            raise
        done[filename] = dest
    return done


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("size", help="small | medium | large | xl (or a hub name such as gpt2-medium)")
    p.add_argument("--out", default=os.path.join(D.repo_root(), "models"),
                   help="parent directory; files go to <out>/<hub name>/ (default: models/)")
    p.add_argument("--revision", default="main", help="hub branch, tag or commit (default: main)")
    p.add_argument("--files", nargs="+", default=None, metavar="FILE",
                   help="download only these files (default: all of " + ", ".join(f for f, _ in FILES) + ")")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 check of model.safetensors")
    p.add_argument("--retries", type=int, default=3, help="automatic resumes per file (default: 3)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    args = p.parse_args()
    unknown = sorted(set(args.files or []) - {f for f, _ in FILES})
    if unknown:
        p.error(f"unknown file(s) {', '.join(unknown)}; choose from {', '.join(f for f, _ in FILES)}")
    repo = SIZES.get(args.size, args.size)
    if repo not in SIZES.values():
        p.error(f"unknown size {args.size!r}; choose from {', '.join(SIZES)}")
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    out_dir = os.path.join(args.out, repo)
    os.makedirs(out_dir, exist_ok=True)
    done = download_model(repo, out_dir, endpoint, args.revision, token, args.files, not args.no_verify,
                          args.retries, not args.quiet)
    for f, path in done.items():
        print(f"{path} ({os.path.getsize(path):,} bytes)")


if __name__ == "__main__":
    D.run_main(main)
