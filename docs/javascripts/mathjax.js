// MathJax 3 for the whole site: the pages' math (arithmatex turns $...$ into \(...\)) and
// the math in the notebooks' markdown cells, which keeps its $...$ delimiters. Code is
// never typeset (MathJax skips pre and code elements).
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
};

// mkdocs-material can swap pages without reloading them (instant navigation): typeset each.
document$.subscribe(() => {
  MathJax.startup.output.clearCache();
  MathJax.typesetClear();
  MathJax.texReset();
  MathJax.typesetPromise();
});
