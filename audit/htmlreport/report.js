// meshguard HTML report: severity filter and self-check. No network, no eval.
(function () {
  var root = document.documentElement;
  window.addEventListener("error", function (e) {
    root.setAttribute("data-js-error", String(e.message || e));
  });
  function apply() {
    var boxes = document.querySelectorAll("input[data-filter-severity]");
    var hidden = {};
    for (var i = 0; i < boxes.length; i++) {
      if (!boxes[i].checked) { hidden[boxes[i].getAttribute("data-filter-severity")] = true; }
    }
    var rows = document.querySelectorAll("[data-finding-severity]");
    for (var j = 0; j < rows.length; j++) {
      rows[j].hidden = !!hidden[rows[j].getAttribute("data-finding-severity")];
    }
  }
  function measure() {
    var g = document.getElementById("graph-image");
    if (g) {
      var r = g.getBoundingClientRect();
      root.setAttribute("data-graph-box", Math.round(r.width) + "x" + Math.round(r.height));
    }
    root.setAttribute("data-js-ready", "1");
  }
  var boxes = document.querySelectorAll("input[data-filter-severity]");
  for (var i = 0; i < boxes.length; i++) { boxes[i].addEventListener("change", apply); }
  if (document.readyState === "complete") { measure(); } else { window.addEventListener("load", measure); }
})();
