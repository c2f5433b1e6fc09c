// conveyor console: the only script a page runs (inline scripts are forbidden by the
// Content-Security-Policy). It asks before a form marked data-confirm is sent, and refreshes
// the live view from the JSON endpoint named by <main data-live="...">.
"use strict";

document.addEventListener("submit", function (event) {
  var button = event.submitter;
  var question = (button && button.dataset.confirm) || event.target.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

(function () {
  var main = document.querySelector("main[data-live]");
  if (!main) {
    return;
  }
  var url = main.dataset.live;
  var svg = "http://www.w3.org/2000/svg";

  function fixed(x, digits) {
    return Number(x).toFixed(digits);
  }

  function draw(el, seconds) {
    while (el.firstChild) {
      el.removeChild(el.firstChild);
    }
    var top = 1;
    seconds.forEach(function (s) {
      top = Math.max(top, s.completed + s.failed);
    });
    seconds.forEach(function (s, i) {
      var hc = (s.completed / top) * 46;
      var hf = (s.failed / top) * 46;
      [["c", hc, 48 - hc], ["f", hf, 48 - hc - hf]].forEach(function (part) {
        if (part[1] <= 0) {
          return;
        }
        var r = document.createElementNS(svg, "rect");
        r.setAttribute("class", part[0]);
        r.setAttribute("x", String(i * 10 + 1));
        r.setAttribute("width", "8");
        r.setAttribute("y", String(part[2]));
        r.setAttribute("height", String(part[1]));
        el.appendChild(r);
      });
    });
  }

  function update(data) {
    data.queues.forEach(function (q) {
      var card = document.querySelector('[data-queue="' + CSS.escape(q.name) + '"]');
      if (!card) {
        return;
      }
      var set = function (field, text) {
        var el = card.querySelector('[data-field="' + field + '"]');
        if (el) {
          el.textContent = text;
        }
      };
      set("completed", fixed(q.rates.completed_per_second, 1));
      set("failed", fixed(q.rates.failed_per_second, 1));
      set("latency", fixed(q.oldest_waiting_seconds, 1) + " s");
      set("waiting", String(q.depth.waiting));
      set("active", String(q.depth.in_flight));
      set("dead", String(q.depth.dead));
      set("workers", String(q.live_workers));
      set("paused", q.paused ? "paused" : "running");
      var badge = card.querySelector('[data-field="paused"]');
      if (badge) {
        badge.className = "badge " + (q.paused ? "paused" : "running");
      }
      var spark = card.querySelector("svg.spark");
      if (spark) {
        draw(spark, q.seconds);
      }
    });
    var stamp = document.getElementById("updated");
    if (stamp) {
      stamp.textContent = new Date(data.at_ms).toLocaleTimeString();
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        return r.ok ? r.json() : Promise.reject(r.status);
      })
      .then(update)
      .catch(function () {
        var stamp = document.getElementById("updated");
        if (stamp) {
          stamp.textContent = "unreachable, retrying";
        }
      })
      .then(function () {
        window.setTimeout(poll, 2000);
      });
  }
  poll();
})();
