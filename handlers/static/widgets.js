/* Small building blocks the pages share: links, cells, sections, sortable and paged tables, "show more". */
(() => {
"use strict";

const { fmt } = Charts;
const TABLE_PAGE = 50; // rows drawn at once; "show more" draws the next ones

function link(href, text) {
  return Dash.h("a", { href }, text);
}

function num(v, d) {
  return Dash.h("td", { class: "num" }, fmt(v, d));
}

function badge(text) {
  return Dash.h("span", { class: `badge ${text}` }, text);
}

function section(title, ...children) {
  return Dash.h("section", {}, Dash.h("h2", {}, title), ...children);
}

/* A button that runs an async action and shows "Loading…" while it runs; it removes itself when the action
   returns false (nothing more to show). */
function moreButton(label, action) {
  const button = Dash.h("button", { type: "button", class: "more" }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.textContent = "Loading…";
    try {
      const more = await action();
      if (more === false) button.remove();
    } catch (e) {
      button.replaceWith(Dash.h("p", { class: "error" }, e.message));
      return;
    }
    button.disabled = false;
    button.textContent = label;
  });
  return button;
}

function compare(a, b, key, dir) {
  const x = a[key], y = b[key];
  if (x === y) return 0;
  if (x === null || x === undefined) return 1;
  if (y === null || y === undefined) return -1;
  return (x < y ? -1 : 1) * dir;
}

/* A table whose headers sort it; columns: [[key, label, render(row) -> node|string]]. Long tables draw
   TABLE_PAGE rows at a time, with a "show more" button under them. The table carries data-sort (key and
   direction) after a sort. */
function sortableTable(rows, columns, cls) {
  const { h } = Dash;
  let key = null, dir = 1, shown = TABLE_PAGE;
  const tbody = h("tbody");
  const table = h("table", { class: cls || "" });
  const foot = h("div", { class: "table-foot" });
  const fill = () => {
    const sorted = key === null ? rows : [...rows].sort((a, b) => compare(a, b, key, dir));
    tbody.replaceChildren(...sorted.slice(0, shown).map((r) => h("tr", {}, columns.map(([k, , render]) => {
      const v = render ? render(r) : r[k];
      if (v instanceof Node) return h("td", {}, v);
      return typeof v === "number" ? num(v) : h("td", {}, fmt(v));
    }))));
    foot.replaceChildren();
    if (rows.length > shown) {
      foot.append(h("span", { class: "muted" }, `${shown} of ${rows.length} rows `),
        moreButton("Show more rows", async () => { shown += TABLE_PAGE; fill(); return rows.length > shown; }));
    }
  };
  const head = h("tr", {}, columns.map(([k, label]) => h("th", {
    class: "sortable", title: "sort", "data-key": k,
    onclick: () => {
      dir = key === k ? -dir : (typeof rows.find((r) => r[k] !== null && r[k] !== undefined)?.[k] === "number" ? -1 : 1);
      key = k;
      table.dataset.sort = `${k} ${dir > 0 ? "asc" : "desc"}`;
      fill();
    },
  }, label)));
  table.append(h("thead", {}, head), tbody);
  fill();
  return h("div", { class: "table-wrap" }, table, foot);
}

/* "name=value" query text of the defined entries. */
function query(params) {
  return Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
}

window.Widgets = { link, num, badge, section, moreButton, sortableTable, query, TABLE_PAGE };
})();
