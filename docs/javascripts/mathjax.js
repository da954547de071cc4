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

// mkdocs-material can swap pages without reloading them (instant navigation): typeset each
// new page once MathJax has started. The output cache is kept: clearing it drops the CSS of
// the glyphs already on the page, and the maths turns blank.
document$.subscribe(() => {
  MathJax.startup.promise.then(() => {
    MathJax.typesetClear();
    MathJax.texReset();
    return MathJax.typesetPromise();
  });
});
