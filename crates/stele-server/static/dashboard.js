// Stele dashboard: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  // JSON editors: report parse errors while typing (the server reports meta-schema errors).
  function checkJson(textarea) {
    var status = document.getElementById(textarea.id + "-status");
    if (!status) return;
    var text = textarea.value.trim();
    var wrapper = textarea.closest(".json-editor");
    if (text === "") {
      status.textContent = "";
      status.classList.remove("error");
      if (wrapper) wrapper.classList.remove("invalid");
      return;
    }
    try {
      var value = JSON.parse(text);
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new Error("A metadata schema must be a JSON object (a JSON Schema).");
      }
      status.textContent = "Valid JSON";
      status.classList.remove("error");
      if (wrapper) wrapper.classList.remove("invalid");
    } catch (error) {
      status.textContent = "Not valid JSON: " + error.message;
      status.classList.add("error");
      if (wrapper) wrapper.classList.add("invalid");
    }
  }

  document.querySelectorAll("textarea[data-json-editor]").forEach(function (textarea) {
    textarea.addEventListener("input", function () { checkJson(textarea); });
  });

  // Context menus: Escape closes the open one and returns focus to its button; opening
  // one closes the others; a click elsewhere closes them all.
  var menus = document.querySelectorAll("details.menu");
  menus.forEach(function (menu) {
    menu.addEventListener("toggle", function () {
      if (!menu.open) return;
      menus.forEach(function (other) { if (other !== menu) other.open = false; });
      var first = menu.querySelector("a");
      if (first && document.activeElement === menu.querySelector("summary")) first.focus();
    });
    menu.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && menu.open) {
        menu.open = false;
        menu.querySelector("summary").focus();
      }
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        var links = Array.prototype.slice.call(menu.querySelectorAll("a"));
        var index = links.indexOf(document.activeElement);
        if (index === -1) return;
        event.preventDefault();
        var next = (index + (event.key === "ArrowDown" ? 1 : -1) + links.length) % links.length;
        links[next].focus();
      }
    });
  });
  document.addEventListener("click", function (event) {
    menus.forEach(function (menu) { if (!menu.contains(event.target)) menu.open = false; });
  });

  // After "Review changes" the answer is the review panel: bring it into view.
  var review = document.getElementById("review");
  if (review) review.scrollIntoView({ block: "start" });

  // Destructive forms ask first.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  // Events viewer: "Load more" appends the next page below the rows already shown (the
  // link carries the keyset cursor, so nothing repeats or goes missing). Without this
  // script, or if the fetch fails, the link simply opens that page.
  document.querySelectorAll("a[data-load-more]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      var body = document.querySelector("#events tbody");
      if (!body || !window.fetch || !window.DOMParser) return;
      event.preventDefault();
      if (link.getAttribute("aria-busy") === "true") return;
      link.setAttribute("aria-busy", "true");
      var target = link.href;
      fetch(target, { credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          var next = new DOMParser().parseFromString(html, "text/html");
          next.querySelectorAll("#events tbody tr").forEach(function (row) {
            body.appendChild(document.importNode(row, true));
          });
          var more = next.querySelector("a[data-load-more]");
          if (more) {
            link.setAttribute("href", more.getAttribute("href"));
            link.removeAttribute("aria-busy");
          } else {
            link.remove();
          }
        })
        .catch(function () { window.location.href = target; });
    });
  });
})();
