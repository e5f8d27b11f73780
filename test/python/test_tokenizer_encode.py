"""The engine's GPT-2 BPE encoder (`lnfree_tool encode`) against Hugging Face's GPT2TokenizerFast, both on the
bundled tiny model's vocab.json and merges.txt: the id lists must be equal, exactly, on the tiny corpus's text, on
hand-written Unicode, white-space and special-token cases, and on the code points at every edge of the Unicode
class tables (lnfree/unicode_classes.h).

Needs build/lnfree_tool (make) and transformers in .venv (dev/setup.sh --python)."""

import os
import re
import subprocess
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from transformers import GPT2TokenizerFast  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "build", "lnfree_tool")
TINY_MODEL = os.path.join(ROOT, "data", "tiny", "model")
TINY_VAL = os.path.join(ROOT, "data", "tiny", "tiny_val_000000.bin")
UNICODE_TABLES = os.path.join(ROOT, "lnfree", "unicode_classes.h")
sys.path.insert(0, os.path.join(ROOT, "dev", "data"))
import lnfree_data  # noqa: E402

HAND_WRITTEN = {
    "greek": "Καλημέρα κόσμε· ΑΒΓ αβγ, ἀρχή ᾧ",
    "cjk": "中文字符和日本語のかな、カタカナ。한국어 텍스트",
    "accented_latin": "Crème brûlée à la façon de Zoë; naïve café, Ångström, ŞĞİ",
    "digits": "Arabic-Indic ٠١٢٣٤٥٦٧٨٩, Devanagari ०१२३, 3.14159 and 1,000,000 or 2024-11-26",
    "superscripts": "x² + y³ = z⁴, ½ + ¾, ①② Ⅻ, H₂O",
    "emoji": "emoji 😀👍🏽 family 👨‍👩‍👧 flag 🇫🇷 heart ❤️!!",
    "tabs": "tabs\tand\t\tdouble\t tab-space \t\tend\t",
    "crlf": "windows\r\nline\r\nendings\r\n\r\nblank\r\n",
    "trailing_spaces": "trailing spaces   ",
    "endoftext": "in the middle<|endoftext|>of a text <|endoftext|><|endoftext|> twice\n<|endoftext|>",
    "contractions": "I'm sure they'll say it's what we've done, isn't it? You'd, we're; 'S 'T ''s 'sup",
    "spaces_before_words": "a  b   c    d\n\n\ne  \n f\u00a0g \u3000h\u2028i\u0085j",
    "punctuation": "Hello, world!!! (quoted) \"yes\"... #tag @user $5 -- —dash— «guillemets»",
    "information_separators": "a\x1cb \x1d c\x1e\x1f d",
    "unicode_16_letter": "Garay 𐵐𐵑 and Gurung Khema 𖄀",
    "only_space": " ",
    "empty": "",
}


@pytest.fixture(scope="module")
def hf_tokenizer():
    return GPT2TokenizerFast.from_pretrained(TINY_MODEL)


def lnfree_encode(tmp_path, text):
    path = tmp_path / "text.txt"
    path.write_bytes(text.encode("utf-8"))
    out = subprocess.run([TOOL, "encode", TINY_MODEL, str(path)], check=True, capture_output=True, text=True).stdout
    out = out.strip()
    return [int(t) for t in out.split(",")] if out else []


def test_corpus_text_encodes_as_transformers_does(tmp_path, hf_tokenizer):
    tokens = lnfree_data.read_shard(TINY_VAL)[:1500].tolist()
    text = hf_tokenizer.decode(tokens, clean_up_tokenization_spaces=False)
    assert len(text) > 3000
    assert lnfree_encode(tmp_path, text) == hf_tokenizer.encode(text)


@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_hand_written_text_encodes_as_transformers_does(tmp_path, hf_tokenizer, name):
    text = HAND_WRITTEN[name]
    assert lnfree_encode(tmp_path, text) == hf_tokenizer.encode(text)


def class_table_edges():
    """Every code point at or next to a range edge in the generated tables (where an off-by-one would show)."""
    edges = set()
    for first, last in re.findall(r"\{0x([0-9A-F]+), 0x([0-9A-F]+)\}", open(UNICODE_TABLES).read()):
        first, last = int(first, 16), int(last, 16)
        edges.update([first - 1, first, last, last + 1])
    return sorted(c for c in edges if 0 < c <= 0x10FFFF and not 0xD800 <= c <= 0xDFFF)


def test_unicode_class_edges_encode_as_transformers_does(tmp_path, hf_tokenizer):
    # each code point after a letter, a digit, punctuation and a space, and doubled: a wrong class splits differently
    text = "".join(f"a{ch}a 1{ch}1 !{ch}! {ch}{ch}  {ch}\n" for ch in map(chr, class_table_edges()))
    assert lnfree_encode(tmp_path, text) == hf_tokenizer.encode(text)
