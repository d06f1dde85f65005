// Neural Image Enhancer: before/after comparison slider of the Enhancer tab.
// One IIFE, one-time init, delegated listeners on the document: works whether gradio 3 (A1111) or
// gradio 4 (Forge, standalone) renders the tab, and whenever the slider's HTML is replaced.
(function () {
    "use strict";
    if (window.__nieInitDone) {
        return;
    }
    window.__nieInitDone = true;

    var RANGE = "nie-compare-range";
    var BOX = "nie-compare";

    function eventTarget(event) {
        // Events from inside a shadow root are retargeted to its host; the path has the real node.
        var path = typeof event.composedPath === "function" ? event.composedPath() : null;
        return path && path.length ? path[0] : event.target;
    }

    function setSplit(range) {
        var box = range.closest ? range.closest("." + BOX) : null;
        if (!box) {
            return;
        }
        var value = Math.max(0, Math.min(100, parseFloat(range.value) || 0));
        box.style.setProperty("--nie-pos", value + "%");
    }

    function onInput(event) {
        var target = eventTarget(event);
        if (target && target.classList && target.classList.contains(RANGE)) {
            setSplit(target);
        }
    }

    document.addEventListener("input", onInput, true);
    document.addEventListener("change", onInput, true);
})();
