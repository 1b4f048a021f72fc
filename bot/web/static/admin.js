/*
 * 科普日智能助手管理后台 (/admin): 长者模式 and the retrain progress.
 * Loaded in <head> without defer, so 长者模式 applies before the first paint;
 * everything else waits for DOMContentLoaded. No inline script anywhere (CSP).
 * 长者模式 shares its localStorage key with the portal widget (same origin).
 */
(function () {
  "use strict";

  var ELDER_KEY = "kepu-widget:elder";
  var ELDER_CLASS = "adm-elder";
  var POLL_MS = 800;

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
      /* storage disabled: the choice lasts for this page only */
    }
  }

  document.documentElement.classList.toggle(ELDER_CLASS, elderStored());

  function setupElder() {
    var toggle = document.querySelector(".adm-elder-toggle");
    if (!toggle) {
      return;
    }
    toggle.setAttribute("aria-pressed", String(elderStored()));
    toggle.addEventListener("click", function () {
      var on = !document.documentElement.classList.contains(ELDER_CLASS);
      document.documentElement.classList.toggle(ELDER_CLASS, on);
      toggle.setAttribute("aria-pressed", String(on));
      storeElder(on);
    });
  }

  // On a phone the menu is one row that scrolls sideways: show the current page's item.
  function revealCurrentNav() {
    var current = document.querySelector(".adm-nav a[aria-current='page']");
    var row = current && current.closest("ul");
    if (row && row.scrollWidth > row.clientWidth) {
      var offset = current.getBoundingClientRect().left - row.getBoundingClientRect().left;
      row.scrollLeft += offset - (row.clientWidth - current.offsetWidth) / 2;
    }
  }

  // ---------------------------------------------------------------- retrain

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function setupRetrain() {
    var form = document.getElementById("retrain-form");
    var panel = document.getElementById("retrain-panel");
    if (!form || !panel) {
      return;
    }
    var button = document.getElementById("retrain-start");
    var bar = document.getElementById("retrain-bar");
    var percent = document.getElementById("retrain-percent");
    var stateText = document.getElementById("retrain-state");
    var meta = document.getElementById("retrain-meta");
    var steps = document.getElementById("retrain-steps");
    var verdict = document.getElementById("retrain-verdict");
    var csrf = form.querySelector("input[name=csrf_token]").value;
    var full = document.getElementById("retrain-full");
    var timer = null;

    function showError(message) {
      verdict.textContent = "";
      verdict.appendChild(el("p", "adm-verdict adm-bad", message));
    }

    function renderVerdict(status) {
      verdict.textContent = "";
      if (status.state === "failed") {
        verdict.appendChild(el("p", "adm-verdict adm-bad", status.error || "重新训练失败"));
        return;
      }
      var result = status.result;
      if (status.state !== "done" || !result) {
        return;
      }
      if (result.deployed) {
        verdict.appendChild(el("p", "adm-verdict adm-ok", "已部署新模型：" + (result.model || "")));
      } else {
        verdict.appendChild(el("p", "adm-verdict adm-bad", "未部署新模型，继续使用原模型。"));
      }
      verdict.appendChild(el("p", "", "原因：" + (result.reason || "")));
      verdict.appendChild(el("p", "", "用时：" + result.seconds + " 秒"));
      var rows = result.gate_rows || [];
      if (rows.length) {
        var list = el("dl", "adm-gate");
        rows.forEach(function (row) {
          list.appendChild(el("dt", "", row[0]));
          list.appendChild(el("dd", "", row[1]));
        });
        verdict.appendChild(list);
      }
    }

    function render(status) {
      var value = Math.round((status.progress || 0) * 100);
      bar.value = value;
      bar.textContent = value + "%";
      percent.textContent = value + "%";
      panel.setAttribute("data-state", status.state);
      var running = status.state === "running";
      stateText.textContent = status.state_label + (running && status.step ? "：" + status.step : "");
      meta.textContent = status.started_by ? "由 " + status.started_by + " 开始" : "";
      steps.textContent = "";
      (status.steps || []).forEach(function (step) {
        steps.appendChild(el("li", "", step.label));
      });
      button.disabled = running;
      if (!running) {
        renderVerdict(status);
      } else {
        verdict.textContent = "";
      }
    }

    function poll() {
      timer = null;
      fetch("/admin/api/retrain/status", { credentials: "same-origin", cache: "no-store" })
        .then(function (resp) {
          if (resp.status === 401) {
            window.location.href = "/admin/login?next=%2Fadmin%2Fretrain";
            return null;
          }
          return resp.json();
        })
        .then(function (status) {
          if (!status) {
            return;
          }
          render(status);
          if (status.state === "running") {
            timer = window.setTimeout(poll, POLL_MS);
          }
        })
        .catch(function () {
          stateText.textContent = "无法获取进度，正在重试…";
          timer = window.setTimeout(poll, POLL_MS * 3);
        });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      verdict.textContent = "";
      fetch("/admin/api/retrain", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ full: !!(full && full.checked) })
      })
        .then(function (resp) {
          return resp.json().then(function (body) {
            return { status: resp.status, body: body };
          });
        })
        .then(function (answer) {
          if (answer.status === 202) {
            render(answer.body);
            if (!timer) {
              timer = window.setTimeout(poll, POLL_MS);
            }
          } else if (answer.status === 401) {
            window.location.href = "/admin/login?next=%2Fadmin%2Fretrain";
          } else {
            button.disabled = answer.status === 409;
            showError((answer.body && answer.body.error) || "无法开始重新训练");
            if (answer.status === 409) {
              poll();
            }
          }
        })
        .catch(function () {
          button.disabled = false;
          showError("网络错误，无法开始重新训练，请稍后再试。");
        });
    });

    if (panel.getAttribute("data-state") === "running") {
      poll();
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupElder();
    revealCurrentNav();
    setupRetrain();
  });
})();
