"""PTB tokenisation of the COCO caption evaluation (pycocoevalcap's ``PTBTokenizer``), made safe to call.

The COCO protocol tokenises predictions and references with the Stanford PTB tokenizer (Java, the
``stanford-corenlp-3.4.1.jar`` that pycocoevalcap ships) run as
``java -cp <jar> edu.stanford.nlp.process.PTBTokenizer -preserveLines -lowerCase <file>``, then drops the tokens
``'' ' `` ` -LRB- -RRB- -LCB- -RCB- . ? ! , : - -- ... ;``. This module runs the same jar with the same options and
the same post-processing, so its tokens are pycocoevalcap's (a test compares them). No Python port is used: the PTB
lexer has hundreds of rules (contractions ``don't`` → ``do n't``, ``cannot`` → ``can not``, quotes, abbreviations)
and a partial port would give different COCO numbers without saying so.

What differs from calling ``PTBTokenizer().tokenize`` directly (none of it changes a token of a well-formed caption):

* the temporary file goes to the system temporary folder, not into pycocoevalcap's package folder (read-only in
  many installations);
* characters that Java reads as line ends (``\\r``, vertical tab, form feed, U+2028, U+2029) become spaces like
  ``\\n`` does — pycocoevalcap replaces only ``\\n``, so such a caption shifts every later caption by one line;
  the number of output lines is checked;
* Java missing or failing is a :class:`ProbeError` that says what to install; Java's progress line is not shown.

Note the protocol's own quirk, kept: with ``-lowerCase`` the tokenizer writes ``-lrb-`` / ``-rrb-`` for brackets,
which the (upper-case) drop list does not catch, so a bracket in a caption stays a token.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import ProbeError

# pycocoevalcap/tokenizer/ptbtokenizer.py PUNCTUATIONS
DROPPED = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
_JAVA_LINE_ENDS = str.maketrans({c: " " for c in "\n\r\x0b\x0c\u2028\u2029"})
_CLASS = "edu.stanford.nlp.process.PTBTokenizer"


def _jar() -> Path:
    from pycocoevalcap.tokenizer import ptbtokenizer

    return Path(ptbtokenizer.__file__).with_name(ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)


def java_command() -> list[str]:
    """The command that tokenises a file (the file path is appended); raises ProbeError without Java or the jar."""
    java = shutil.which("java")
    if java is None:
        raise ProbeError(
            "the COCO caption protocol (cider_coco, bleu_coco) needs Java for the Stanford PTB tokenizer, and `java` "
            "is not on PATH: install a Java runtime (e.g. `apt-get install default-jre-headless` or `conda install "
            "openjdk`), or use cider / bleu (no Java)."
        )
    jar = _jar()
    if not jar.is_file():
        raise ProbeError(f"the PTB tokenizer jar {str(jar)!r} is missing: reinstall pycocoevalcap.")
    return [java, "-cp", str(jar), _CLASS, "-preserveLines", "-lowerCase"]


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """COCO-protocol tokenisation of every text: tokens joined by spaces, punctuation tokens dropped."""
    if not texts:
        return []
    command = java_command()
    with tempfile.TemporaryDirectory(prefix="cotbal_ptb_") as folder:
        path = Path(folder) / "captions.txt"
        path.write_text("\n".join(t.translate(_JAVA_LINE_ENDS) for t in texts), encoding="utf-8")
        proc = subprocess.run([*command, str(path)], capture_output=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise ProbeError(f"the Java PTB tokenizer failed (exit {proc.returncode}): {' | '.join(tail)}")
    lines = proc.stdout.decode("utf-8").split("\n")
    if len(lines) < len(texts) or any(lines[len(texts) :]):
        raise ProbeError(
            f"the Java PTB tokenizer returned {len(lines)} lines for {len(texts)} texts; a text holds a line break "
            "it does not treat as such. Please report this text."
        )
    # pycocoevalcap: ' '.join(w for w in line.rstrip().split(' ') if w not in PUNCTUATIONS)
    return [" ".join(w for w in line.rstrip().split(" ") if w not in DROPPED) for line in lines[: len(texts)]]
