// Sorting, filtering and paging of the run report. Reads only the page's own elements and
// writes only element attributes and textContent: no markup is built from data, nothing is fetched.
(function () {
  "use strict";
  var PAGE_SIZE = 50;
  var doc = document;

  function byId(id) { return doc.getElementById(id); }
  function toArray(list) { return Array.prototype.slice.call(list); }

  var table = byId("jobs-table");
  var tbody = table.tBodies[0];
  var rows = toArray(tbody.rows);
  var lanes = toArray(doc.querySelectorAll("#lanes .lane"));
  var searchText = rows.map(function (row) { return row.textContent.toLowerCase(); });
  rows.forEach(function (row, k) { row.setAttribute("data-search", String(k)); });
  var filterText = byId("filter-text");
  var filterStatus = byId("filter-status");
  var filterSource = byId("filter-source");

  function Pager(root, items) {
    this.root = root;
    this.items = items;
    this.page = 0;
    this.visible = items;
    this.info = root.querySelector(".info");
    var self = this;
    root.querySelector(".prev").addEventListener("click", function () { self.go(self.page - 1); });
    root.querySelector(".next").addEventListener("click", function () { self.go(self.page + 1); });
  }
  Pager.prototype.pages = function () { return Math.max(1, Math.ceil(this.visible.length / PAGE_SIZE)); };
  Pager.prototype.go = function (page) {
    this.page = Math.min(Math.max(page, 0), this.pages() - 1);
    var first = this.page * PAGE_SIZE, last = first + PAGE_SIZE;
    var shown = new Set(this.visible.slice(first, last));
    this.items.forEach(function (el) { el.hidden = !shown.has(el); });
    var total = this.visible.length;
    this.info.textContent = total === 0 ? "no job matches" :
      (first + 1) + "\u2013" + Math.min(last, total) + " of " + total + " (page " + (this.page + 1) + " of " + this.pages() + ")";
    this.root.querySelector(".prev").disabled = this.page === 0;
    this.root.querySelector(".next").disabled = this.page >= this.pages() - 1;
  };
  Pager.prototype.show = function (visible) { this.visible = visible; this.go(0); };

  var tablePager = new Pager(byId("jobs-pager"), rows);
  var lanePager = new Pager(byId("lanes-pager"), lanes);

  function matching() {
    var text = filterText.value.trim().toLowerCase();
    var status = filterStatus.value, source = filterSource.value;
    var ok = new Set();
    rows.forEach(function (row) {
      if (status && row.getAttribute("data-status") !== status) { return; }
      if (source && row.getAttribute("data-source") !== source) { return; }
      if (text && searchText[Number(row.getAttribute("data-search"))].indexOf(text) < 0) { return; }
      ok.add(row.getAttribute("data-i"));
    });
    return ok;
  }

  function apply() {
    var ok = matching();
    var current = toArray(tbody.rows);
    tablePager.items = current;
    tablePager.show(current.filter(function (row) { return ok.has(row.getAttribute("data-i")); }));
    lanePager.show(lanes.filter(function (lane) { return ok.has(lane.getAttribute("data-i")); }));
  }

  function sortBy(th) {
    var col = th.cellIndex;
    var numeric = th.getAttribute("data-type") === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    toArray(table.tHead.rows[0].cells).forEach(function (cell) { cell.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var sign = dir === "ascending" ? 1 : -1;
    var keyed = toArray(tbody.rows).map(function (row, k) {
      var value = row.cells[col].getAttribute("data-v");
      return { row: row, k: k, v: numeric ? Number(value) : (value === null ? row.cells[col].textContent : value) };
    });
    keyed.sort(function (a, b) {
      var c = numeric ? a.v - b.v : String(a.v).localeCompare(String(b.v));
      return c !== 0 ? sign * c : a.k - b.k;
    });
    var fragment = doc.createDocumentFragment();
    keyed.forEach(function (entry) { fragment.appendChild(entry.row); });
    tbody.appendChild(fragment);
    apply();
  }

  toArray(table.tHead.rows[0].cells).forEach(function (th) {
    var button = th.querySelector("button");
    if (button) { button.addEventListener("click", function () { sortBy(th); }); }
  });
  filterText.addEventListener("input", apply);
  filterStatus.addEventListener("change", apply);
  filterSource.addEventListener("change", apply);
  toArray(doc.querySelectorAll("button.source-link")).forEach(function (button) {
    button.addEventListener("click", function () {
      filterSource.value = button.getAttribute("data-source");
      apply();
      byId("jobs").scrollIntoView();
    });
  });
  apply();
  doc.documentElement.setAttribute("data-ready", "1");
})();
