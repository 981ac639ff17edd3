/* Console niceties; every page works without them. A dangerous action's button stays disabled
 * until the confirmation field holds the expected id (the server checks it again). */
(function () {
  "use strict";
  var forms = document.querySelectorAll("form.action.danger");
  Array.prototype.forEach.call(forms, function (form) {
    var input = form.querySelector("input[name=confirm]");
    var button = form.querySelector("button");
    var expected = decodeURIComponent(form.getAttribute("action").split("/").slice(-2, -1)[0] || "");
    if (!input || !button || !expected) { return; }
    var sync = function () { button.disabled = input.value.trim() !== expected; };
    input.addEventListener("input", sync);
    sync();
  });
})();
