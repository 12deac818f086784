// The web chat page: talks to /api/messages and /api/history (see docs/web-api.md). No dependencies.
(function () {
  "use strict";

  var MAX_FILE = 10 * 1024 * 1024;
  var SAFE_URL = /^(https?:|mailto:|tel:)/i;
  var URL_IN_TEXT = /(https?:\/\/[^\s<>"]+[^\s<>".,;:!?)\]])/g;
  var BOLD = /\*\*([^*\n]+)\*\*/;

  var root = document.getElementById("chat");
  var t = root.dataset;
  var log = document.getElementById("log");
  var form = document.getElementById("composer");
  var input = document.getElementById("message");
  var fileInput = document.getElementById("file");
  var sendButton = document.getElementById("send");
  var language = document.getElementById("lang");
  var statusLine = document.getElementById("status");
  var errorLine = document.getElementById("error");
  var busy = false;
  // Embedded on a registry's site (widget.js): the frame keeps its visitor itself, since browsers do not send
  // the cookie of a frame from another site, and it talks to the launcher around it.
  var embedded = root.dataset.embedded === "1";
  var VISITOR = "registry-bot-visitor";
  var visitor = "";
  var shown = !embedded;  // whether the member can see the chat (the launcher opened it)
  if (embedded) {
    try { visitor = window.localStorage.getItem(VISITOR) || ""; } catch (e) { visitor = ""; }
    if (!visitor) {
      visitor = root.dataset.visitor;
      try { window.localStorage.setItem(VISITOR, visitor); } catch (e) { /* storage may be off */ }
    }
  }

  function headers(extra) {
    var all = extra || {};
    if (visitor) { all["X-Registry-Visitor"] = visitor; }
    return all;
  }

  function tellSite(what) {
    if (embedded && window.parent !== window) { window.parent.postMessage({ registryBot: what }, "*"); }
  }

  function deliveryId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function fill(template, name) { return template.replace("{name}", name); }

  function setBusy(value, message) {
    busy = value;
    sendButton.disabled = value;
    language.disabled = value;
    statusLine.textContent = value ? (message || t.sending) : "";
    log.setAttribute("aria-busy", value ? "true" : "false");
  }

  function showError(message) { errorLine.textContent = message || ""; }

  function appendText(parent, text) {
    // replies are plain text with **bold** (the knowledge articles' Markdown) and bare URLs
    text.split(BOLD).forEach(function (part, index) {
      if (index % 2 === 1) {
        var strong = document.createElement("strong");
        appendLinks(strong, part);
        parent.appendChild(strong);
      } else {
        appendLinks(parent, part);
      }
    });
  }

  function appendLinks(parent, text) {
    var last = 0;
    text.replace(URL_IN_TEXT, function (url, _group, offset) {
      parent.appendChild(document.createTextNode(text.slice(last, offset)));
      parent.appendChild(makeLink(url, url));
      last = offset + url.length;
      return url;
    });
    parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function makeLink(label, url) {
    var link = document.createElement("a");
    link.href = url;
    link.textContent = label;
    if (/^https?:/i.test(url)) {
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      var note = document.createElement("span");
      note.className = "speaker";
      note.textContent = " (" + t.newTab + ")";
      link.appendChild(note);
    }
    return link;
  }

  function addMessage(from, text) {
    var item = document.createElement("div");
    item.className = "message " + from;
    // the assistant and the help desk write in the conversation's language; members may write in any
    if (from !== "member") { item.lang = root.dataset.lang === "zh_Hans" ? "zh-Hans" : root.dataset.lang; }
    var speaker = document.createElement("span");
    speaker.className = "speaker";
    speaker.textContent = (from === "member" ? t.you : from === "staff" ? t.staff : t.assistant) + ": ";
    item.appendChild(speaker);
    appendText(item, text);
    log.appendChild(item);
    return item;  // where the view goes is for the caller: a help desk reply must not pull a reader away
  }

  function addReply(reply) {
    var item = addMessage("assistant", reply.text);
    if (reply.links && reply.links.length) {
      var list = document.createElement("ul");
      list.className = "links";
      list.setAttribute("aria-label", t.links);
      reply.links.forEach(function (link) {
        if (!SAFE_URL.test(link.url)) { return; }
        var entry = document.createElement("li");
        entry.appendChild(makeLink(link.label, link.url));
        list.appendChild(entry);
      });
      item.appendChild(list);
    }
    if (reply.choices && reply.choices.length) {
      addChoices(item, reply.choices);
    }
    return item;
  }

  function addChoices(item, choices) {
    var group = document.createElement("div");
    group.className = "choices";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", t.choices);
    choices.forEach(function (choice) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = choice.label;
      button.dataset.payload = choice.payload;
      button.addEventListener("click", function () {
        if (busy) { return; }
        button.setAttribute("aria-pressed", "true");
        retireChoices();
        send({ payload: choice.payload }, choice.label);
      });
      group.appendChild(button);
    });
    item.appendChild(group);
  }

  function retireChoices() {
    var buttons = log.querySelectorAll(".choices button");
    for (var i = 0; i < buttons.length; i += 1) { buttons[i].disabled = true; }
  }

  var PENDING_FIRST = 2000, PENDING_MAX = 30000;  // ms between offers of a message the server could not keep

  function wait(ms) { return new Promise(function (resolve) { window.setTimeout(resolve, ms); }); }

  function post(body, isForm, attempt) {
    var options = { method: "POST", credentials: "same-origin", body: body };
    options.headers = headers(isForm ? {} : { "Content-Type": "application/json" });
    return window.fetch("/api/messages", options).catch(function (problem) {
      // the same delivery id again: if the first attempt did reach the server it is not processed twice
      if (attempt < 2) {
        return wait(800 * (attempt + 1)).then(function () { return post(body, isForm, attempt + 1); });
      }
      throw problem;
    });
  }

  function answer(response) {
    return response.json().catch(function () { return {}; }).then(function (data) {
      if (response.status === 503 && data.pending) { data.stillPending = true; return data; }
      if (!response.ok) {
        var error = new Error(data.error || "http");
        error.code = response.status === 413 ? "too_large" : data.error;
        throw error;
      }
      return data;
    });
  }

  // The server could not keep the message (its database is away): the message stays on the page, marked
  // as not delivered, and is offered again with the same delivery id until it is kept and answered.
  function deliver(body, isForm, bubble, delay, apologized) {
    return post(body, isForm, 0).then(answer, function (problem) {
      if (problem instanceof TypeError) { return { stillPending: true, replies: [] }; }
      throw problem;
    }).then(function (data) {
      if (!data.stillPending) {
        if (bubble) { bubble.classList.remove("pending"); bubble.removeAttribute("aria-describedby"); }
        return data;
      }
      if (bubble) { bubble.classList.add("pending"); bubble.setAttribute("aria-describedby", "status"); }
      if (!apologized && data.replies && data.replies.length) { data.replies.forEach(addReply); }
      setBusy(true, t.pending);
      var told = apologized || Boolean(data.replies && data.replies.length);
      return wait(delay).then(function () {
        return deliver(body, isForm, bubble, Math.min(delay * 2, PENDING_MAX), told);
      });
    });
  }

  // The conversation may change language (the member wrote in Spanish): the selector follows it, and the
  // page is drawn again in that language, so its own labels match (the history brings everything back).
  var switching = false;
  function reopenIn(lang) {
    switching = true;
    window.location.replace("/?" + (embedded ? "embed=1&" : "") + "lang=" + encodeURIComponent(lang));
  }

  function followLanguage(lang) {
    if (!lang || lang === root.dataset.lang || switching) { return; }
    root.dataset.lang = lang;
    if (Array.prototype.some.call(language.options, function (o) { return o.value === lang; })) {
      language.value = lang;
      reopenIn(lang);
    }
  }

  function send(message, shown, file) {
    var id = deliveryId();
    var body;
    var isForm = Boolean(file);
    if (isForm) {
      body = new FormData();
      body.append("delivery_id", id);
      body.append("lang", root.dataset.lang);
      body.append("file", file, file.name);
    } else {
      message.delivery_id = id;
      message.lang = root.dataset.lang;
      body = JSON.stringify(message);
    }
    showError("");
    var bubble = shown ? addMessage("member", shown) : null;
    log.scrollTop = log.scrollHeight;
    setBusy(true, isForm ? fill(t.uploading, file.name) : t.sending);
    return deliver(body, isForm, bubble, PENDING_FIRST, false)
      .then(function (data) {
        followLanguage(data.lang);
        if (isForm && bubble && !data.files_kept) {  // refused: the reply says why; the note says so too
          while (bubble.childNodes.length > 1) { bubble.removeChild(bubble.lastChild); }  // the speaker stays
          appendText(bubble, fill(t.fileNotKept, file.name));
          bubble.classList.add("refused");
        }
        var items = data.replies.map(addReply);
        // long answers are read from their start: scroll to the question (or the first reply), not the end
        var top = bubble || items[0];
        if (top) { log.scrollTop = top.offsetTop - log.offsetTop - 8; }
        return data;
      })
      .catch(function (problem) {
        if (bubble) { bubble.remove(); }
        if (problem.code === "too_large") { showError(t.errorTooLarge); }
        else { showError(t.errorGeneric); }
        return null;
      })
      .then(function (result) { setBusy(false); return result; });
  }

  var lastEntry = 0;  // the newest transcript entry this page has shown (or answered itself)
  var marker = document.getElementById("new-message");
  marker.addEventListener("click", function () {
    marker.hidden = true;
    log.scrollTop = log.scrollHeight;
    log.focus();
  });
  log.addEventListener("scroll", function () {
    if (log.scrollHeight - log.scrollTop - log.clientHeight < 40) { marker.hidden = true; }
  });

  function showStored(entries, choices) {
    var lastReply = null;
    entries.forEach(function (entry) {
      var item = addMessage(entry.from, entry.text);
      if (entry.from === "assistant") { lastReply = item; }
    });
    if (lastReply && choices && choices.length) { addChoices(lastReply, choices); }
    log.scrollTop = log.scrollHeight;
  }

  function fetchHistory(after) {
    var query = after ? "?after=" + encodeURIComponent(after) : "";
    return window.fetch("/api/history" + query, { credentials: "same-origin", headers: headers() })
      .then(function (response) { return response.ok ? response.json() : { messages: [] }; });
  }

  // The whole conversation once, when the page opens.
  function loadHistory() {
    return fetchHistory(0)
      .then(function (data) {
        log.textContent = "";
        showStored(data.messages, data.choices);
        lastEntry = data.last || 0;
      })
      .catch(function () { showError(t.errorNetwork); });
  }

  // Afterwards only what is new: a help desk person may answer between the member's messages. What this page
  // sent and was answered is on screen already; nothing is redrawn, and the view stays where the member reads.
  function loadNew() {
    return fetchHistory(lastEntry).then(function (data) {
      var fresh = data.messages.filter(function (entry) { return entry.from === "staff"; });
      var atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
      fresh.forEach(function (entry) { addMessage(entry.from, entry.text); });
      if (fresh.length && atBottom) { log.scrollTop = log.scrollHeight; }
      if (fresh.length && !atBottom) { marker.hidden = false; }  // the member is reading further up
      if (fresh.length && !shown) { tellSite("unread"); }
      lastEntry = Math.max(lastEntry, data.last || 0);
    });
  }

  function sendFiles(files, index) {
    if (index >= files.length) { return Promise.resolve(); }
    var file = files[index];
    if (file.size > MAX_FILE) {
      showError(t.errorTooLarge);
      return sendFiles(files, index + 1);
    }
    return send(null, fill(t.fileSent, file.name), file).then(function () { return sendFiles(files, index + 1); });
  }

  var chosenLine = document.getElementById("file-chosen");
  function showChosen() {
    var names = Array.prototype.map.call(fileInput.files || [], function (file) { return file.name; });
    chosenLine.textContent = names.length ? fill(chosenLine.dataset.template, names.join(", ")) : "";
  }
  fileInput.addEventListener("change", showChosen);

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) { return; }
    var text = input.value.trim();
    var chosen = Array.prototype.slice.call(fileInput.files || []);
    if (!text && !chosen.length) { showError(t.errorEmpty); input.focus(); return; }
    // a file over the limit is taken off the selection (said once); the text and the other files go
    var files = chosen.filter(function (file) { return file.size <= MAX_FILE; });
    input.value = "";
    fileInput.value = "";
    showChosen();
    var first = text ? send({ text: text }, text) : Promise.resolve();
    first.then(function () { return sendFiles(files, 0); }).then(function () {
      if (files.length < chosen.length) { showError(t.errorTooLarge); }
      input.focus();
    });
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit", { cancelable: true }));
    }
  });

  language.addEventListener("change", function () {
    var chosen = language.value;
    retireChoices();
    send({ payload: "lang:" + chosen }, language.options[language.selectedIndex].text).then(function (data) {
      // the page's own words are rendered by the server in the conversation's language
      if (data && !switching) { reopenIn(chosen); }
    });
  });

  loadHistory();
  // a person at the help desk may answer between the member's messages: look for new ones now and then
  window.setInterval(function () {
    if (!busy && document.visibilityState === "visible") { loadNew().catch(function () {}); }
  }, 10000);

  if (embedded) {
    var closer = document.getElementById("close");
    if (closer) { closer.addEventListener("click", function () { tellSite("close"); }); }
    document.addEventListener("keydown", function (event) { if (event.key === "Escape") { tellSite("close"); } });
    window.addEventListener("message", function (event) {
      if (event.source !== window.parent || !event.data) { return; }
      if (event.data.registryBot === "opened") { shown = true; input.focus(); }
      if (event.data.registryBot === "closed") { shown = false; }
    });
  }
}());
