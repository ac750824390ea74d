// Upload with a progress bar: the form is sent with XMLHttpRequest so that upload.onprogress
// can report the bytes sent; the server answers {"redirect": url} or problem+json.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) { return; }
  var bar = document.getElementById("progress-bar");
  var box = document.getElementById("progress");
  var label = document.getElementById("progress-text");
  var errorBox = document.getElementById("upload-error");
  var submit = document.getElementById("submit");

  var add = document.getElementById("add-item");
  if (add) {
    add.addEventListener("click", function () {
      var rows = form.querySelectorAll("tr.item-row");
      var copy = rows[rows.length - 1].cloneNode(true);
      copy.querySelectorAll("input").forEach(function (i) { i.value = ""; i.checked = false; });
      rows[rows.length - 1].parentNode.appendChild(copy);
    });
  }

  function itemFlags() {
    // The key/required checkboxes say which row they belong to by the row's item name (or
    // its title when the name is left to be derived from it).
    form.querySelectorAll("tr.item-row").forEach(function (row) {
      var title = row.querySelector(".item-title");
      var name = row.querySelector(".item-name").value.trim() || (title ? title.value.trim() : "");
      var key = row.querySelector(".item-key");
      var req = row.querySelector(".item-required");
      [[key, "item_is_key"], [req, "item_required"]].forEach(function (pair) {
        if (!pair[0]) { return; }
        pair[0].name = pair[0].checked && name ? pair[1] : "";
        pair[0].value = name;
      });
    });
  }

  function showError(text, errors) {
    errorBox.hidden = false;
    errorBox.textContent = text;
    if (errors && errors.length) {
      var ul = document.createElement("ul");
      errors.slice(0, 20).forEach(function (e) {
        var li = document.createElement("li");
        // The column (or field) and its problem, already in the page's language.
        var name = e.column || e.field || "";
        li.textContent = (name ? name + ": " : "") + (e.problem || e.message || "");
        ul.appendChild(li);
      });
      errorBox.appendChild(ul);
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    itemFlags();
    errorBox.hidden = true;
    errorBox.textContent = "";
    box.hidden = false;
    bar.value = 0;
    submit.disabled = true;
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = function (e) {
      if (!e.lengthComputable) { return; }
      var pct = Math.round(100 * e.loaded / e.total);
      bar.value = pct;
      label.textContent = form.dataset.sending + " " + pct + "% (" +
        (e.loaded / 1048576).toFixed(1) + " / " + (e.total / 1048576).toFixed(1) + " MiB)";
    };
    xhr.upload.onload = function () {
      bar.value = 100;
      label.textContent = form.dataset.processing;
    };
    xhr.onload = function () {
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = null; }
      if (xhr.status < 300 && body && body.redirect) {
        window.location.assign(body.redirect);
        return;
      }
      submit.disabled = false;
      box.hidden = true;
      if (xhr.status === 409 && body && body.similar && window.govshareSimilar) {
        // A similar resource of the department (similar.js lists it, with the confirm box).
        window.govshareSimilar.show(body.similar);
      }
      showError((body && body.detail) || (form.dataset.failed + " (" + xhr.status + ")"),
                body && body.errors);
    };
    xhr.onerror = function () {
      submit.disabled = false;
      box.hidden = true;
      showError(form.dataset.failed);
    };
    xhr.send(new FormData(form));
  });
}());
