/* newsrec Artikel Terkait: fills <div data-newsrec-related="ARTICLE_ID"> with the related list and
 * reports each click (list_id, position) to /v1/events.
 *
 *   <div data-newsrec-related="a123"></div>
 *   <script src="https://NEWSREC/widget/embed.js" data-newsrec-key="nr_widget_..." data-limit="5" async></script>
 *
 * The key is a public "widget" key: it may only post click events of the anonymous reader. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) { return; }
  var base = new URL(script.src, window.location.href).origin;
  var key = script.getAttribute("data-newsrec-key");
  var limit = script.getAttribute("data-limit");

  function report(link) {
    var box = link.closest("[data-newsrec-list]");
    if (!key || !box) { return; }
    var event = {
      user_id: "anonymous",
      article_id: link.getAttribute("data-newsrec-article"),
      event: "click",
      ts: new Date().toISOString(),
      list_id: box.getAttribute("data-newsrec-list"),
      position: parseInt(link.getAttribute("data-newsrec-position"), 10)
    };
    try {
      fetch(base + "/v1/events", {
        method: "POST", keepalive: true, credentials: "omit", mode: "cors",
        headers: {"Content-Type": "application/json", "X-API-Key": key},
        body: JSON.stringify({events: [event]})
      }).catch(function () {});
    } catch (e) { /* a report must never break the link */ }
  }

  function fill(placeholder) {
    var id = placeholder.getAttribute("data-newsrec-related");
    if (!id) { return; }
    var url = base + "/widget/articles/" + encodeURIComponent(id) + "/related";
    if (limit) { url += "?limit=" + encodeURIComponent(limit); }
    fetch(url, {credentials: "omit", mode: "cors"}).then(function (response) {
      if (!response.ok) { throw new Error("newsrec widget: HTTP " + response.status); }
      return response.text();
    }).then(function (html) {
      placeholder.innerHTML = html;  /* every field is escaped by the server */
      placeholder.addEventListener("click", function (ev) {
        var link = ev.target.closest && ev.target.closest("a[data-newsrec-position]");
        if (link) { report(link); }
      });
      placeholder.setAttribute("data-newsrec-ready", "1");
    }).catch(function () { placeholder.setAttribute("data-newsrec-ready", "error"); });
  }

  var boxes = document.querySelectorAll("[data-newsrec-related]");
  for (var i = 0; i < boxes.length; i++) { fill(boxes[i]); }
})();
