// biobench report: sortable and filterable tables, nothing else.
// A header click sorts its column by each cell's data-sort (a number) or, without one, its
// text; a second click reverses. Cells without a number sort last either way.
(function () {
  "use strict";
  function key(cell) {
    if (!cell) return { num: null, text: "" };
    var raw = cell.getAttribute("data-sort");
    var text = cell.textContent.trim();
    // Without a data-sort, a cell that is just a number sorts as one ("-", "nan" do not).
    var num = raw === null ? (/^[-+]?[0-9.]+$/.test(text) ? parseFloat(text) : NaN) : parseFloat(raw);
    return { num: isFinite(num) ? num : null, text: text };
  }
  function compare(a, b, numeric) {
    if (numeric) {
      if (a.num === null && b.num === null) return 0;
      if (a.num === null) return 1;
      if (b.num === null) return -1;
      return a.num - b.num;
    }
    return a.text.localeCompare(b.text, undefined, { numeric: true });
  }
  function sortBy(table, index, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var numeric = rows.some(function (r) { return key(r.cells[index]).num !== null; });
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    rows.sort(function (r1, r2) {
      var a = key(r1.cells[index]), b = key(r2.cells[index]);
      if (numeric && (a.num === null || b.num === null)) return compare(a, b, true);
      var order = compare(a, b, numeric);
      return ascending ? order : -order;
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    if (!table.tHead) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.title = "sort by " + th.textContent.trim();
      th.addEventListener("click", function () { sortBy(table, index, th); });
    });
  });
  document.querySelectorAll("input[data-filter]").forEach(function (input) {
    input.addEventListener("input", function () {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      document.querySelectorAll(input.getAttribute("data-filter")).forEach(function (table) {
        Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
          var text = row.textContent.toLowerCase();
          row.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
        });
      });
    });
  });
})();
