// One source for each piece of data: while the registration form is filled in, ask
// POST /api/v1/resources/similar with the draft's name and data items, and list the similar
// resources: the department's own with a confirm box (the server refuses without it), other
// departments' as sources to apply for. Names are set as text, never as HTML.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  var section = document.getElementById("similar");
  if (!form || !section) { return; }
  var token = document.querySelector('meta[name="csrf-token"]').content;
  var same = document.getElementById("similar-same");
  var others = document.getElementById("similar-others");
  var confirmBox = document.getElementById("confirm-duplicate");
  var timer = null;
  var asked = "";

  function draft() {
    var items = [];
    form.querySelectorAll("tr.item-row").forEach(function (row) {
      var name = row.querySelector(".item-name").value.trim();
      var title = row.querySelector(".item-title").value.trim();
      if (name || title) { items.push({name: name, title: title}); }
    });
    return {name: document.getElementById("name").value.trim(), items: items};
  }

  function entry(match) {
    var li = document.createElement("li");
    var link = document.createElement("a");
    link.href = "/catalog/" + encodeURIComponent(match.code);
    link.textContent = match.code + " " + match.name;
    li.appendChild(link);
    var dept = section.dataset.lang === "en" ? (match.provider.name_en || match.provider.name_zh)
      : match.provider.name_zh;
    var note = " — " + dept + ", " +
      section.dataset.score.replace("{pct}", String(Math.round(match.score * 100)));
    if (match.matched_items.length) {
      note += "; " + section.dataset.items.replace("{items}", match.matched_items.map(
        function (m) { return m.existing; }).join("、"));
    }
    li.appendChild(document.createTextNode(note));
    return li;
  }

  function fill(box, matches) {
    var list = box.querySelector("ul");
    list.textContent = "";
    matches.forEach(function (m) { list.appendChild(entry(m)); });
    box.hidden = matches.length === 0;
  }

  function show(found) {
    fill(same, found.same_department || []);
    fill(others, found.other_departments || []);
    if (!(found.same_department || []).length) { confirmBox.checked = false; }
  }

  function ask() {
    var body = draft();
    if (body.name.length < 2 && body.items.length === 0) { return; }
    var key = JSON.stringify(body);
    if (key === asked) { return; }
    asked = key;
    fetch("/api/v1/resources/similar", {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json",
                "X-CSRF-Token": token},
      body: key
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (found) {
      if (found) { show(found); }
    }).catch(function () { asked = ""; });  // advisory: the server checks again on submit
  }

  function later(event) {
    var t = event.target;
    if (t.id === "name" || t.classList.contains("item-name") ||
        t.classList.contains("item-title")) {
      window.clearTimeout(timer);
      timer = window.setTimeout(ask, 400);
    }
  }

  form.addEventListener("input", later);
  form.addEventListener("change", later);
  window.govshareSimilar = {show: show};
}());
