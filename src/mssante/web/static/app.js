// MSSanté webmail: progressive enhancement only; every page works without it.
// Recipient fields (data-annuaire) suggest mailboxes of the national directory as the
// user types (WAI-ARIA combobox with a listbox: arrows to move, Enter to choose,
// Escape to close). The last address being typed is the one searched.
"use strict";

(function () {
  const MIN = 2;
  const DELAY = 200;

  function lastTerm(value) {
    const parts = value.split(/[,;]/);
    return parts[parts.length - 1].trim();
  }

  function replaceLast(value, address) {
    const parts = value.split(/[,;]/);
    parts[parts.length - 1] = " " + address;
    return parts.map((p) => p.trim()).filter((p) => p).join(", ") + ", ";
  }

  function enhance(input) {
    const list = document.getElementById(input.dataset.annuaire);
    if (!list) return;
    let timer = null;
    let active = -1;
    let options = [];
    let controller = null;
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-controls", list.id);
    input.setAttribute("aria-expanded", "false");

    function close() {
      list.hidden = true;
      list.replaceChildren();
      options = [];
      active = -1;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
    }

    function choose(index) {
      const option = options[index];
      if (!option) return;
      input.value = replaceLast(input.value, option.dataset.address);
      close();
      input.focus();
    }

    function highlight(index) {
      options.forEach((o, i) => o.setAttribute("aria-selected", i === index ? "true" : "false"));
      active = index;
      if (options[index]) {
        input.setAttribute("aria-activedescendant", options[index].id);
        options[index].scrollIntoView({ block: "nearest" });
      }
    }

    function show(found) {
      list.replaceChildren();
      options = found.map((s, i) => {
        const li = document.createElement("li");
        li.id = list.id + "-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        li.dataset.address = s.address;
        const name = document.createElement("strong");
        name.textContent = s.label;
        const detail = document.createElement("span");
        detail.textContent = " — " + s.detail + " — " + s.address;
        li.append(name, detail);
        li.addEventListener("mousedown", (e) => { e.preventDefault(); choose(i); });
        list.append(li);
        return li;
      });
      list.hidden = options.length === 0;
      input.setAttribute("aria-expanded", options.length ? "true" : "false");
      active = -1;
    }

    async function search() {
      const term = lastTerm(input.value);
      if (term.length < MIN) { close(); return; }
      if (controller) controller.abort();
      controller = new AbortController();
      try {
        const response = await fetch("/annuaire?q=" + encodeURIComponent(term),
                                     { signal: controller.signal, credentials: "same-origin" });
        if (!response.ok) { close(); return; }
        show(await response.json());
      } catch (e) {
        if (e.name !== "AbortError") close();
      }
    }

    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(search, DELAY);
    });
    input.addEventListener("keydown", (e) => {
      if (list.hidden) return;
      if (e.key === "ArrowDown") { e.preventDefault(); highlight(Math.min(active + 1, options.length - 1)); }
      else if (e.key === "ArrowUp") { e.preventDefault(); highlight(Math.max(active - 1, 0)); }
      else if (e.key === "Enter" && active >= 0) { e.preventDefault(); choose(active); }
      else if (e.key === "Escape") { close(); }
    });
    input.addEventListener("blur", () => setTimeout(close, 150));
  }

  document.querySelectorAll("input[data-annuaire]").forEach(enhance);
})();
