/*
 * 智能机器人 portal chat widget (科普日智能助手).
 *
 * Embed with one line:  <script src="http://HOST:5005/widget/widget.js" defer></script>
 *
 * Plain JavaScript, no framework, no build step. Works under a strict
 * Content-Security-Policy: no inline script or style, no eval, no innerHTML;
 * every text is set with textContent. The widget lives in a shadow root so the
 * portal's CSS cannot break it, and finds the bot's origin from its own
 * script src: assets, session ids, hot questions, feedback and the REST
 * channel (/webhooks/rest/webhook) are all requested from that origin only.
 */
(function () {
  "use strict";

  if (window.__kepuWidgetLoaded) {
    return;
  }
  window.__kepuWidgetLoaded = true;

  // ---------------------------------------------------------------- config

  var script = document.currentScript;
  if (!script) {
    var candidates = document.querySelectorAll("script[src]");
    for (var i = 0; i < candidates.length; i++) {
      if (/\/widget\/widget\.js(\?|#|$)/.test(candidates[i].src)) {
        script = candidates[i];
      }
    }
  }
  var ORIGIN = script ? new URL(script.src, document.baseURI).origin : window.location.origin;
  var BASE = ORIGIN + "/widget/";
  var WEBHOOK = ORIGIN + "/webhooks/rest/webhook";
  var MAX_CHARS = 500;
  var REQUEST_TIMEOUT_MS = 30000;
  var STATE_KEY = "kepu-widget:state:v1";
  var DRAFT_KEY = "kepu-widget:draft:v1";
  var ELDER_KEY = "kepu-widget:elder";
  // Only these hosts become clickable links in bot answers.
  var LINK_HOSTS = ["kepuri.cn", "www.kepuri.cn", "www.zwsptq.gov.cn", "mtw.so"];
  // E-mail addresses, URLs and phone numbers (0955-8812005, 15109558601) in bot answers:
  // shown unbroken, and on phones e-mails and numbers become mailto: / tel: links.
  var TOKEN_PATTERN = /(?<email>[\w.%+-]+@(?:[a-z0-9-]+\.)+[a-z]{2,})|(?<url>(?<![\w@.\-\/])(?:https?:\/\/)?(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}(?::\d{2,5})?(?:\/[\w\-.~%\/?#=&+:@!$,;*]*)?)|(?<phone>(?<![\d-])(?:0\d{2,3}-\d{7,8}|1[3-9]\d{9})(?![\d-]))/gi;
  // The full-screen, modal layout: phones, and short windows such as a desktop at
  // 200% zoom (1366x768 -> 683x384 CSS pixels), where a floating panel has no room.
  var FULL_SCREEN_QUERY = "(max-width: 599.98px), (max-height: 599.98px)";
  // Where tapping a number should call it: touch screens and phone-sized windows.
  var PHONE_QUERY = "(pointer: coarse), (max-width: 599.98px)";

  var T = {
    launcher: "智能机器人",
    launcherLabel: "打开智能机器人对话窗口",
    title: "智能机器人",
    subtitle: "科普日活动咨询",
    elder: "长者模式",
    elderLabel: "长者模式：大字体、高对比度",
    newChat: "新对话",
    newChatLabel: "新对话：清空对话记录，重新开始",
    close: "关闭对话窗口",
    log: "对话记录",
    inputLabel: "输入您的问题",
    placeholder: "请输入您的问题（Enter 发送，Shift+Enter 换行）",
    send: "发送",
    sendLabel: "发送消息",
    limitReached: "已达到 500 字上限",
    greeting: "您好！我是沙坡头区的智能机器人，可以解答《关于举办2021年中卫沙坡头区全国科普日活动的通知》的相关问题。请点击下方的热点问题，或直接输入您的问题。",
    hot: "热点问题",
    me: "我：",
    bot: "智能机器人：",
    typing: "智能机器人正在输入…",
    sending: "发送中…",
    failed: "发送失败，点击重试",
    failedLabel: "发送失败，点击重试：",
    emptyReply: "抱歉，暂时没有得到回复，请换个说法再试。",
    feedbackGroup: "这条回答对您有帮助吗？",
    up: "满意",
    down: "不满意",
    upLabel: "满意：这条回答有帮助",
    downLabel: "不满意：这条回答没有帮助",
    thanks: "感谢您的反馈！",
    feedbackFailed: "反馈提交失败，请稍后再试。",
    newTab: "（在新窗口打开）",
    disclaimer: "回答依据通知原文整理，仅供参考。",
    buttons: "可选问题"
  };

  // ---------------------------------------------------------------- storage

  function readJSON(storage, key) {
    try {
      var raw = storage.getItem(key);
      return raw ? JSON.parse(raw) : null;
    } catch (e) {
      return null;
    }
  }

  function writeJSON(storage, key, value) {
    try {
      storage.setItem(key, JSON.stringify(value));
    } catch (e) {
      /* storage full or disabled: the conversation just does not persist */
    }
  }

  function loadState() {
    var saved = readJSON(window.sessionStorage, STATE_KEY);
    if (!saved || typeof saved !== "object" || !Array.isArray(saved.messages)) {
      return { sessionId: null, messages: [], open: false };
    }
    saved.messages.forEach(function (m) {
      if (m.status === "sending") {
        m.status = "failed"; // the page was left before the answer came
      }
    });
    return saved;
  }

  var state = loadState();

  function saveState() {
    writeJSON(window.sessionStorage, STATE_KEY, state);
  }

  function elderStored() {
    try {
      return window.localStorage.getItem(ELDER_KEY) === "1";
    } catch (e) {
      return false;
    }
  }

  function storeElder(on) {
    try {
      window.localStorage.setItem(ELDER_KEY, on ? "1" : "0");
    } catch (e) {
      /* ignore */
    }
  }

  function newId() {
    var bytes = new Uint8Array(8);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return (b + 256).toString(16).slice(1);
    }).join("");
  }

  // ---------------------------------------------------------------- DOM helpers

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        var value = attrs[name];
        if (value === null || value === undefined || value === false) {
          return;
        }
        if (name === "text") {
          node.textContent = value;
        } else if (name === "className") {
          node.className = value;
        } else {
          node.setAttribute(name, value === true ? "" : String(value));
        }
      });
    }
    (children || []).forEach(function (child) {
      if (child) {
        node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
      }
    });
    return node;
  }

  function icon(name, className) {
    return el("img", { src: BASE + "icons/" + name + ".svg", alt: "", className: className || "kepu-icon", width: 24, height: 24, draggable: "false" });
  }

  function srOnly(text) {
    return el("span", { className: "kepu-sr", text: text });
  }

  /**
   * Append `text` to `parent` as text nodes. E-mail addresses, URLs and phone
   * numbers never wrap inside; allow-listed URLs become links, and on phones
   * e-mails and numbers become mailto: and tel: links.
   */
  function appendRichText(parent, text) {
    var last = 0;
    text.replace(TOKEN_PATTERN, function () {
      var match = arguments[0];
      var offset = arguments[arguments.length - 3];
      var groups = arguments[arguments.length - 1];
      var candidate = groups.url ? match.replace(/[.,;:!?'*]+$/, "") : match;
      if (offset > last) {
        parent.appendChild(document.createTextNode(text.slice(last, offset)));
      }
      parent.appendChild(tokenNode(groups, candidate));
      last = offset + candidate.length;
      return match;
    });
    if (last < text.length) {
      parent.appendChild(document.createTextNode(text.slice(last)));
    }
  }

  /** The element for one e-mail address, URL or phone number found in an answer. */
  function tokenNode(groups, text) {
    var phone = window.matchMedia(PHONE_QUERY).matches;
    var link = groups.url ? safeLink(text) : null;
    if (link) {
      var anchor = el("a", { href: link, target: "_blank", rel: "noopener noreferrer", className: "kepu-link kepu-nowrap" });
      anchor.textContent = text;
      anchor.appendChild(srOnly(T.newTab));
      return anchor;
    }
    if (phone && (groups.email || groups.phone)) {
      var href = groups.email ? "mailto:" + text : "tel:" + text.replace(/-/g, "");
      return el("a", { href: href, className: "kepu-link kepu-nowrap", text: text });
    }
    return el("span", { className: "kepu-nowrap", text: text });
  }

  /** The href for an allow-listed http(s) URL, or null. */
  function safeLink(candidate) {
    var href = /^https?:\/\//i.test(candidate) ? candidate : "https://" + candidate;
    var url;
    try {
      url = new URL(href);
    } catch (e) {
      return null;
    }
    if ((url.protocol !== "http:" && url.protocol !== "https:") || url.username || url.password) {
      return null;
    }
    return LINK_HOSTS.indexOf(url.hostname.toLowerCase()) >= 0 ? url.href : null;
  }

  // ---------------------------------------------------------------- network

  function request(method, url, body) {
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = controller ? window.setTimeout(function () { controller.abort(); }, REQUEST_TIMEOUT_MS) : null;
    var options = { method: method, credentials: "omit", cache: "no-store", headers: {} };
    if (controller) {
      options.signal = controller.signal;
    }
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return window.fetch(url, options).then(function (response) {
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      return response.json();
    }).finally(function () {
      if (timer) {
        window.clearTimeout(timer);
      }
    });
  }

  var sessionPromise = null;

  function ensureSession() {
    if (state.sessionId) {
      return Promise.resolve(state.sessionId);
    }
    if (!sessionPromise) {
      sessionPromise = request("POST", BASE + "session").then(function (data) {
        if (!data || typeof data.session_id !== "string") {
          throw new Error("bad session");
        }
        state.sessionId = data.session_id;
        saveState();
        return state.sessionId;
      }).finally(function () {
        sessionPromise = null;
      });
    }
    return sessionPromise;
  }

  // ---------------------------------------------------------------- UI

  var host = document.createElement("kepu-chat-widget");
  var root = host.attachShadow({ mode: "open" });
  var stylesheet = el("link", { rel: "stylesheet", href: BASE + "widget.css" });
  var container = el("div", { className: "kepu-root", hidden: true });
  root.appendChild(stylesheet);
  root.appendChild(container);
  // The widget shows once its stylesheet is there; a panel restored open is laid
  // out only then, so it is scrolled to the conversation's end only then.
  function reveal() {
    container.hidden = false;
    if (!panel.hidden) {
      scrollToEnd();
    }
  }
  stylesheet.addEventListener("load", reveal);
  stylesheet.addEventListener("error", reveal);

  var launcher = el("button", {
    type: "button", className: "kepu-launcher", "aria-label": T.launcherLabel,
    "aria-haspopup": "dialog", "aria-expanded": "false", "aria-controls": "kepu-panel"
  }, [icon("chat"), el("span", { className: "kepu-launcher-text", text: T.launcher })]);

  var elderButton = el("button", {
    type: "button", className: "kepu-tool kepu-elder-toggle", "aria-pressed": "false", "aria-label": T.elderLabel, text: T.elder
  });
  var newButton = el("button", { type: "button", className: "kepu-tool kepu-new", "aria-label": T.newChatLabel, text: T.newChat });
  var closeButton = el("button", { type: "button", className: "kepu-tool kepu-close", "aria-label": T.close }, [icon("close")]);
  var title = el("h2", { id: "kepu-title", className: "kepu-title", tabindex: "-1", text: T.title });

  var header = el("div", { className: "kepu-header" }, [
    icon("robot", "kepu-avatar-lg"),
    el("div", { className: "kepu-heading" }, [title, el("p", { className: "kepu-subtitle", text: T.subtitle })]),
    el("div", { className: "kepu-tools" }, [elderButton, newButton, closeButton])
  ]);

  var log = el("div", {
    className: "kepu-messages", role: "log", "aria-live": "polite", "aria-relevant": "additions",
    "aria-label": T.log, tabindex: "0"
  });

  var input = el("textarea", {
    id: "kepu-input", className: "kepu-input", rows: "2", maxlength: String(MAX_CHARS),
    "aria-label": T.inputLabel, placeholder: T.placeholder, "aria-describedby": "kepu-counter",
    autocomplete: "off", enterkeyhint: "send"
  });
  var counter = el("span", { id: "kepu-counter", className: "kepu-counter", text: "0/" + MAX_CHARS });
  var sendButton = el("button", { type: "submit", className: "kepu-send", "aria-label": T.sendLabel }, [icon("send"), el("span", { text: T.send })]);
  var form = el("form", { className: "kepu-composer", "aria-label": T.inputLabel, novalidate: true }, [
    input,
    el("div", { className: "kepu-composer-bar" }, [counter, sendButton])
  ]);

  var panel = el("div", {
    id: "kepu-panel", className: "kepu-panel", role: "dialog", "aria-modal": "false",
    "aria-labelledby": "kepu-title", hidden: true
  }, [header, log, form, el("p", { className: "kepu-disclaimer", text: T.disclaimer })]);

  container.appendChild(panel);
  container.appendChild(launcher);

  var typing = el("div", { className: "kepu-msg kepu-bot kepu-typing", role: "status" }, [
    icon("robot", "kepu-avatar"),
    el("div", { className: "kepu-bubble" }, [
      srOnly(T.typing),
      el("span", { className: "kepu-dot", "aria-hidden": "true" }),
      el("span", { className: "kepu-dot", "aria-hidden": "true" }),
      el("span", { className: "kepu-dot", "aria-hidden": "true" })
    ])
  ]);

  var rendered = {}; // message id -> element

  /**
   * Scroll to the end of the conversation, but never past the first line of the
   * newest message: a long one (the greeting with its hot questions, a long
   * answer) is read from its start.
   */
  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
    var newest = log.lastElementChild;
    if (!newest) {
      return;
    }
    var padding = parseFloat(window.getComputedStyle(log).paddingTop) || 0;
    var hidden = log.getBoundingClientRect().top + padding - newest.getBoundingClientRect().top;
    if (hidden > 0) {
      log.scrollTop -= hidden;
    }
  }

  function renderButtons(msg) {
    var group = el("div", { className: "kepu-buttons", role: "group", "aria-label": msg.kind === "greeting" ? T.hot : T.buttons });
    if (msg.kind === "greeting") {
      group.appendChild(el("p", { className: "kepu-buttons-title", text: T.hot, "aria-hidden": "true" }));
    }
    msg.buttons.forEach(function (b) {
      var button = el("button", { type: "button", className: "kepu-choice", "aria-label": b.title, text: b.title });
      button.addEventListener("click", function () {
        send(b.title, b.payload);
      });
      group.appendChild(button);
    });
    return group;
  }

  function renderFeedback(msg) {
    var group = el("div", { className: "kepu-feedback", role: "group", "aria-label": T.feedbackGroup });
    var up = el("button", { type: "button", className: "kepu-vote", "data-vote": "up", "aria-label": T.upLabel, "aria-pressed": String(msg.vote === "up") }, [icon("thumb-up", "kepu-icon-sm"), el("span", { text: T.up })]);
    var down = el("button", { type: "button", className: "kepu-vote", "data-vote": "down", "aria-label": T.downLabel, "aria-pressed": String(msg.vote === "down") }, [icon("thumb-down", "kepu-icon-sm"), el("span", { text: T.down })]);
    var note = el("span", { className: "kepu-feedback-note", role: "status" });
    if (msg.vote) {
      note.textContent = T.thanks;
      up.setAttribute("aria-disabled", "true");
      down.setAttribute("aria-disabled", "true");
    }
    function vote(kind) {
      if (msg.vote || group.getAttribute("data-busy")) {
        return;
      }
      group.setAttribute("data-busy", "1");
      ensureSession().then(function (sessionId) {
        return request("POST", BASE + "feedback", {
          session_id: sessionId, message: msg.text, question: msg.question || "", vote: kind
        });
      }).then(function () {
        msg.vote = kind;
        saveState();
        up.setAttribute("aria-pressed", String(kind === "up"));
        down.setAttribute("aria-pressed", String(kind === "down"));
        up.setAttribute("aria-disabled", "true");
        down.setAttribute("aria-disabled", "true");
        note.textContent = T.thanks;
      }).catch(function () {
        note.textContent = T.feedbackFailed;
      }).finally(function () {
        group.removeAttribute("data-busy");
      });
    }
    up.addEventListener("click", function () { vote("up"); });
    down.addEventListener("click", function () { vote("down"); });
    group.appendChild(up);
    group.appendChild(down);
    group.appendChild(note);
    return group;
  }

  /** Status line of a user message: sending, or failed with a retry button. */
  function decorateUser(node, msg) {
    var old = node.querySelectorAll(".kepu-retry, .kepu-status");
    Array.prototype.forEach.call(old, function (child) { child.remove(); });
    node.setAttribute("data-status", msg.status || "sent");
    node.classList.toggle("kepu-failed", msg.status === "failed");
    if (msg.status === "failed") {
      var retry = el("button", { type: "button", className: "kepu-retry", "aria-label": T.failedLabel + msg.text, text: T.failed });
      retry.addEventListener("click", function () { retrySend(msg); });
      node.appendChild(retry);
    } else if (msg.status === "sending") {
      node.appendChild(el("span", { className: "kepu-status", text: T.sending }));
    }
  }

  function renderMessage(msg) {
    var node;
    if (msg.role === "user") {
      var bubble = el("div", { className: "kepu-bubble" }, [srOnly(T.me)]);
      bubble.appendChild(document.createTextNode(msg.text));
      bubble.addEventListener("click", function () { retrySend(msg); });
      node = el("div", { className: "kepu-msg kepu-user", "data-id": msg.id }, [bubble]);
      decorateUser(node, msg);
    } else {
      var content = el("div", { className: "kepu-bubble" }, [srOnly(T.bot)]);
      appendRichText(content, msg.text || "");
      node = el("div", { className: "kepu-msg kepu-bot", "data-id": msg.id }, [
        icon("robot", "kepu-avatar"),
        el("div", { className: "kepu-body" }, [
          content,
          msg.buttons && msg.buttons.length ? renderButtons(msg) : null,
          msg.kind === "answer" && msg.text ? renderFeedback(msg) : null
        ])
      ]);
    }
    return node;
  }

  /** Update a shown message in place (so screen readers do not repeat it). */
  function update(node, msg) {
    if (msg.role === "user") {
      decorateUser(node, msg);
    } else if (msg.buttons && msg.buttons.length && !node.querySelector(".kepu-buttons")) {
      node.querySelector(".kepu-body").insertBefore(renderButtons(msg), node.querySelector(".kepu-feedback"));
    }
  }

  /**
   * Show a new message, or update a shown one. A new message goes before the
   * shown message `next` (a retried question's answer lands under it), else at
   * the end, above the typing indicator.
   */
  function show(msg, next) {
    var previous = rendered[msg.id];
    if (previous && previous.parentNode === log) {
      update(previous, msg);
      scrollToEnd();
      return;
    }
    var node = renderMessage(msg);
    rendered[msg.id] = node;
    var before = next && rendered[next.id];
    if (before && before.parentNode === log) {
      log.insertBefore(node, before);
      node.scrollIntoView({ block: "nearest" });
      return;
    }
    if (typing.parentNode === log) {
      log.insertBefore(node, typing);
    } else {
      log.appendChild(node);
    }
    scrollToEnd();
  }

  function renderAll() {
    log.textContent = "";
    rendered = {};
    state.messages.forEach(function (msg) { show(msg); });
    if (pending) {
      setTyping(true);
    }
  }

  function setTyping(on) {
    if (on && typing.parentNode !== log) {
      log.appendChild(typing);
    } else if (!on && typing.parentNode === log) {
      log.removeChild(typing);
    }
    scrollToEnd();
  }

  /** Add a message at `index` of the conversation (default: the end), save and show it. */
  function addMessage(msg, index) {
    msg.id = msg.id || newId();
    var at = typeof index === "number" && index >= 0 && index < state.messages.length ? index : state.messages.length;
    state.messages.splice(at, 0, msg);
    saveState();
    show(msg, state.messages[at + 1]);
    return msg;
  }

  // ---------------------------------------------------------------- conversation

  var queue = Promise.resolve();
  var pending = 0;
  var generation = 0; // bumped by 新对话: late answers of the old conversation are dropped

  /** The bot messages of a REST reply that have text or buttons, as {text, buttons}. */
  function parseReplies(replies) {
    var out = [];
    replies.forEach(function (reply) {
      if (!reply || typeof reply !== "object") {
        return;
      }
      var text = typeof reply.text === "string" ? reply.text : "";
      var buttons = Array.isArray(reply.buttons) ? reply.buttons.filter(function (b) {
        return b && typeof b.title === "string" && typeof b.payload === "string";
      }).map(function (b) {
        return { title: b.title, payload: b.payload };
      }) : [];
      if (text || buttons.length) {
        out.push({ text: text, buttons: buttons });
      }
    });
    return out;
  }

  /** Show the answers to `question` right under it (a retried question may be far up). */
  function showReplies(question, items) {
    var at = state.messages.indexOf(question) + 1;
    if (!items.length) {
      addMessage({ role: "bot", kind: "notice", text: T.emptyReply }, at);
      return;
    }
    items.forEach(function (item, i) {
      addMessage({ role: "bot", kind: "answer", text: item.text, buttons: item.buttons, question: question.text }, at + i);
    });
  }

  function deliver(msg) {
    var mine = generation;
    pending += 1;
    setTyping(true);
    return ensureSession().then(function (sessionId) {
      return request("POST", WEBHOOK, { sender: sessionId, message: msg.payload || msg.text });
    }).then(function (replies) {
      if (mine !== generation) {
        return;
      }
      if (!Array.isArray(replies)) {
        throw new Error("bad reply");
      }
      msg.status = "sent";
      saveState();
      show(msg);
      showReplies(msg, parseReplies(replies));
    }).catch(function () {
      if (mine !== generation) {
        return;
      }
      msg.status = "failed";
      saveState();
      show(msg);
    }).finally(function () {
      if (mine !== generation) {
        return;
      }
      pending -= 1;
      if (!pending) {
        setTyping(false);
      }
    });
  }

  function enqueue(msg) {
    queue = queue.then(function () { return deliver(msg); });
    return queue;
  }

  function send(text, payload) {
    text = String(text || "").slice(0, MAX_CHARS);
    if (!text.trim()) {
      return;
    }
    var msg = addMessage({ role: "user", text: text, payload: payload || null, status: "sending" });
    enqueue(msg);
  }

  function retrySend(msg) {
    if (msg.status !== "failed") {
      return;
    }
    msg.status = "sending";
    saveState();
    show(msg);
    enqueue(msg);
    input.focus();
  }

  function greet() {
    var greeting = addMessage({ role: "bot", kind: "greeting", text: T.greeting, buttons: [] });
    request("GET", BASE + "hot").then(function (items) {
      if (!Array.isArray(items)) {
        return;
      }
      greeting.buttons = items.filter(function (q) {
        return q && typeof q.label === "string" && typeof q.payload === "string";
      }).map(function (q) {
        return { title: q.label, payload: q.payload };
      });
      saveState();
      show(greeting);
    }).catch(function () {
      /* no hot questions: the greeting alone still invites a question */
    });
  }

  function startOver() {
    generation += 1;
    state = { sessionId: null, messages: [], open: true };
    saveState();
    queue = Promise.resolve();
    pending = 0;
    setTyping(false);
    renderAll();
    ensureSession().catch(function () { /* fetched again on the first message */ });
    greet();
    input.focus();
  }

  // ---------------------------------------------------------------- composer

  var composing = false;

  function updateCounter() {
    var length = input.value.length;
    var full = length >= MAX_CHARS;
    counter.textContent = length + "/" + MAX_CHARS + (full ? "（" + T.limitReached + "）" : "");
    counter.classList.toggle("kepu-counter-full", full);
  }

  function submit() {
    var text = input.value;
    if (!text.trim()) {
      return;
    }
    input.value = "";
    writeJSON(window.sessionStorage, DRAFT_KEY, "");
    updateCounter();
    send(text);
  }

  input.addEventListener("compositionstart", function () { composing = true; });
  input.addEventListener("compositionend", function () { composing = false; });
  input.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" && event.keyCode !== 13 && event.keyCode !== 229) {
      return;
    }
    // An IME is composing (pinyin candidates): Enter confirms the candidate, never sends.
    if (event.isComposing || event.keyCode === 229 || composing) {
      return;
    }
    if (event.shiftKey) {
      return; // Shift+Enter: a new line
    }
    event.preventDefault();
    submit();
  });
  input.addEventListener("input", function () {
    if (input.value.length > MAX_CHARS) {
      input.value = input.value.slice(0, MAX_CHARS);
    }
    writeJSON(window.sessionStorage, DRAFT_KEY, input.value);
    updateCounter();
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submit();
  });

  // ---------------------------------------------------------------- open, close, keyboard

  function focusables() {
    var nodes = panel.querySelectorAll("button, textarea, a[href], [tabindex]:not([tabindex='-1'])");
    return Array.prototype.filter.call(nodes, function (node) {
      return !node.disabled && node.getClientRects().length > 0;
    });
  }

  function isFullScreen() {
    return window.matchMedia(FULL_SCREEN_QUERY).matches;
  }

  // Full screen, the panel covers the page and is a modal dialog; floating on a
  // desktop it is not (the page stays usable beside it).
  function updateModality() {
    panel.setAttribute("aria-modal", String(isFullScreen()));
  }

  function open(focus) {
    if (!panel.hidden) {
      return;
    }
    panel.hidden = false;
    container.classList.add("kepu-is-open");
    launcher.setAttribute("aria-expanded", "true");
    state.open = true;
    saveState();
    if (!state.messages.length) {
      greet();
    }
    updateModality();
    fitViewport();
    scrollToEnd();
    if (focus !== false) {
      (isFullScreen() ? title : input).focus();
    }
  }

  function close() {
    if (panel.hidden) {
      return;
    }
    panel.hidden = true;
    container.classList.remove("kepu-is-open");
    launcher.setAttribute("aria-expanded", "false");
    state.open = false;
    saveState();
    launcher.focus();
  }

  launcher.addEventListener("click", function () {
    if (panel.hidden) {
      open();
    } else {
      close();
    }
  });
  closeButton.addEventListener("click", close);
  newButton.addEventListener("click", startOver);

  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !event.isComposing) {
      event.preventDefault();
      close();
      return;
    }
    if (event.key !== "Tab") {
      return;
    }
    var items = focusables();
    if (!items.length) {
      return;
    }
    var first = items[0];
    var last = items[items.length - 1];
    var active = root.activeElement;
    if (event.shiftKey && (active === first || active === title || items.indexOf(active) < 0)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (active === last || items.indexOf(active) < 0 && active !== title)) {
      event.preventDefault();
      first.focus();
    }
  });

  // Full screen (modal): keep focus inside the open dialog, whatever moves it out.
  // Floating on a desktop (non-modal): focus the user moves to the page, such as
  // the portal's search box, stays on the page; Tab still cycles inside the panel.
  document.addEventListener("focusin", function (event) {
    if (!panel.hidden && event.target !== host && isFullScreen()) {
      title.focus();
    }
  });

  // ---------------------------------------------------------------- elder mode

  function setElder(on) {
    container.classList.toggle("kepu-elder", on);
    elderButton.setAttribute("aria-pressed", String(on));
  }

  elderButton.addEventListener("click", function () {
    var on = !container.classList.contains("kepu-elder");
    setElder(on);
    storeElder(on);
    scrollToEnd();
  });

  // ---------------------------------------------------------------- phone keyboard

  // The on-screen keyboard shrinks the visual viewport, not the layout one:
  // size the full-screen panel to the visual viewport so the input stays visible.
  function fitViewport() {
    var vv = window.visualViewport;
    if (!vv || !isFullScreen()) {
      panel.style.removeProperty("--kepu-vv-height");
      panel.style.removeProperty("--kepu-vv-top");
      return;
    }
    panel.style.setProperty("--kepu-vv-height", vv.height + "px");
    panel.style.setProperty("--kepu-vv-top", vv.offsetTop + "px");
  }

  if (window.visualViewport) {
    window.visualViewport.addEventListener("resize", function () { fitViewport(); scrollToEnd(); });
    window.visualViewport.addEventListener("scroll", fitViewport);
  }
  window.addEventListener("resize", function () { updateModality(); fitViewport(); });
  // tel: and mailto: links are for phones: render the answers again when that changes.
  window.matchMedia(PHONE_QUERY).addEventListener("change", renderAll);

  // ---------------------------------------------------------------- start

  function start() {
    document.body.appendChild(host);
    setElder(elderStored());
    renderAll();
    var draft = readJSON(window.sessionStorage, DRAFT_KEY);
    if (typeof draft === "string") {
      input.value = draft.slice(0, MAX_CHARS);
    }
    updateCounter();
    if (state.open) {
      open(false);
    }
  }

  if (document.body) {
    start();
  } else {
    document.addEventListener("DOMContentLoaded", start);
  }

  // For tests and portal scripts: a tiny read-only API.
  window.kepuWidget = {
    open: function () { open(); },
    close: close,
    sessionId: function () { return state.sessionId; }
  };
})();
