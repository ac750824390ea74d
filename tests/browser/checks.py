"""What every zh-CN page must pass, for the browser tests: no English sentence from our code
in the visible text, and no serious or critical accessibility violation by axe-core."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.english import ENGLISH  # four or more English words in a row: a sentence

__all__ = ["AXE", "ENGLISH", "VISIBLE_TEXT", "english_on", "serious_violations"]

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
# Visible text, leaving out what is not ours to translate: codes and values people typed
# (<code>), text marked English (the language switch, English names) or not for translation.
VISIBLE_TEXT = """() => {
  const out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const node = walk.currentNode, el = node.parentElement;
    if (!el || el.closest('code, pre, script, style, [lang="en"], [translate="no"]')) continue;
    if (!el.checkVisibility()) continue;
    out.push(node.textContent);
  }
  return out.join(' ');
}"""


def english_on(page: Any) -> list[str]:
    """English sentences in the page's visible text."""
    found: list[str] = ENGLISH.findall(page.evaluate(VISIBLE_TEXT))
    return found


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations (the page's context must bypass the CSP:
    axe-core is injected as a script of the test's own)."""
    page.add_script_tag(path=str(AXE))
    result: list[str] = page.evaluate("""async () => (await axe.run(document,
        {resultTypes: ['violations']})).violations
        .filter(v => v.impact === 'serious' || v.impact === 'critical')
        .map(v => v.id + ': '
             + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '))""")
    return result
