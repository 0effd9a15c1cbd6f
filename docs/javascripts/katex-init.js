// Render math with the vendored KaTeX (docs/assets/vendor/katex).
// arithmatex (generic mode) leaves \( \) and \[ \] in the Markdown pages; the
// notebooks and docstrings keep $ and $$. auto-render skips <pre> and <code>,
// so code cells and outputs are never touched. Material's document$ emits on
// every page load, including instant navigation.
(function () {
  function render(root) {
    renderMathInElement(root, {
      delimiters: [
        { left: "$$", right: "$$", display: true },
        { left: "\\[", right: "\\]", display: true },
        { left: "\\(", right: "\\)", display: false },
        { left: "$", right: "$", display: false },
      ],
      ignoredClasses: ["katex", "highlight", "highlight-ipynb", "jp-OutputArea-output"],
    });
  }
  if (typeof document$ !== "undefined") {
    document$.subscribe(function () { render(document.body); });
  } else {
    document.addEventListener("DOMContentLoaded", function () { render(document.body); });
  }
})();
