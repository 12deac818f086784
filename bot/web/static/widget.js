// The chat launcher for a registry's own site: <script src="https://HOST/widget.js" async></script>.
// It adds a button that opens the chat (served by registry-bot at HOST) in an iframe. Optional attributes on
// the script tag: data-lang (en, es, zh_Hans), data-position (right, left), data-color (a CSS colour for the
// button), data-label (the button's caption). The chat keeps its conversation while the member moves between
// the site's pages; a reply from the help desk that arrives while the chat is closed shows a badge.
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || window.__registryBotWidget) { return; }
  window.__registryBotWidget = true;
  var host = new URL(script.src, window.location.href).origin;
  var data = script.dataset;
  var lang = data.lang || (document.documentElement.lang || "").replace("-", "_") || "";
  var side = data.position === "left" ? "left" : "right";
  var LABELS = /*LABELS*/{};  // the server puts the captions in here, from its catalogs
  if (lang.split("_")[0] === "zh") { lang = "zh_Hans"; }  // the chat writes Simplified Chinese
  var words = LABELS[lang] || LABELS[lang.split("_")[0]] || LABELS.en || {};

  var launcher = document.createElement("button");
  launcher.type = "button";
  launcher.id = "registry-bot-launcher";
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "registry-bot-frame");
  launcher.textContent = data.label || words.launcher || "Chat";
  var badge = document.createElement("span");
  badge.className = "registry-bot-badge";
  badge.hidden = true;
  badge.textContent = "1";
  badge.setAttribute("aria-label", words.unread || "");
  launcher.appendChild(badge);

  var frame = document.createElement("iframe");
  frame.id = "registry-bot-frame";
  frame.title = data.label || words.launcher || "Chat";
  frame.hidden = true;
  var query = "?embed=1" + (lang ? "&lang=" + encodeURIComponent(lang) : "");
  frame.src = host + "/" + query;

  var style = document.createElement("style");
  var color = /^[#a-zA-Z0-9(),.\s%]+$/.test(data.color || "") ? data.color : "#1d4f91";
  style.textContent =
    "#registry-bot-launcher{position:fixed;bottom:16px;" + side + ":16px;z-index:2147483646;" +
    "background:" + color + ";color:#fff;border:0;border-radius:24px;padding:12px 18px;" +
    "font:600 16px/1.2 system-ui,sans-serif;box-shadow:0 2px 8px rgba(0,0,0,.3);cursor:pointer}" +
    "#registry-bot-launcher:focus-visible{outline:3px solid #ffbf47;outline-offset:2px}" +
    ".registry-bot-badge{display:inline-block;margin-left:8px;min-width:1.4em;border-radius:.7em;" +
    "background:#b00020;color:#fff;font-size:13px;text-align:center}" +
    ".registry-bot-badge[hidden],#registry-bot-frame[hidden]{display:none}" +
    "#registry-bot-frame{position:fixed;bottom:80px;" + side + ":16px;z-index:2147483647;" +
    "width:400px;height:min(640px,calc(100vh - 100px));border:1px solid #888;border-radius:12px;" +
    "background:#fff;box-shadow:0 4px 24px rgba(0,0,0,.35)}" +
    "@media (max-width:480px){#registry-bot-frame{inset:0;width:100%;height:100%;border-radius:0;" +
    "border:0}}";

  function open() {
    frame.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    badge.hidden = true;
    frame.contentWindow && frame.contentWindow.postMessage({ registryBot: "opened" }, host);
    frame.focus();
  }

  function close() {
    frame.hidden = true;
    frame.contentWindow && frame.contentWindow.postMessage({ registryBot: "closed" }, host);
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }

  launcher.addEventListener("click", function () { if (frame.hidden) { open(); } else { close(); } });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !frame.hidden) { close(); }
  });
  window.addEventListener("message", function (event) {
    if (event.origin !== host || !event.data || typeof event.data.registryBot !== "string") { return; }
    if (event.data.registryBot === "close") { close(); }
    if (event.data.registryBot === "unread" && frame.hidden) { badge.hidden = false; }
  });

  function mount() {
    document.head.appendChild(style);
    document.body.appendChild(launcher);
    document.body.appendChild(frame);
  }
  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }
}());
