/* Personalize page: report a click on a feed item (list and position) before following the link. */
(function () {
  "use strict";
  var list = document.getElementById("umpan");
  var meta = document.querySelector("meta[name=newsrec-csrf]");
  if (!list || !meta) { return; }
  list.addEventListener("click", function (ev) {
    var link = ev.target.closest && ev.target.closest("a[data-article]");
    if (!link) { return; }
    var body = new URLSearchParams();
    body.set("csrf_token", meta.getAttribute("content"));
    body.set("article_id", link.getAttribute("data-article"));
    body.set("list_id", list.getAttribute("data-list"));
    body.set("position", link.getAttribute("data-position"));
    try {
      fetch("/baca/untuk-anda/klik", {method: "POST", body: body, keepalive: true, credentials: "same-origin"});
    } catch (e) { /* never block the link */ }
  });
})();
