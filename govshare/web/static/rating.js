// Rate a delivery: POST /api/v1/deliveries/{id}/rating with the page's CSRF token (the API
// requires X-CSRF-Token when it is called with the session cookie).
(function () {
  "use strict";
  var token = document.querySelector('meta[name="csrf-token"]').content;
  document.querySelectorAll(".rating").forEach(function (box) {
    var status = box.querySelector(".rating-status");
    box.querySelectorAll("button.rate").forEach(function (button) {
      button.addEventListener("click", function () {
        var comment = box.querySelector(".rating-comment").value;
        fetch("/api/v1/deliveries/" + box.dataset.delivery + "/rating", {
          method: "POST",
          credentials: "same-origin",
          headers: {"Content-Type": "application/json", "Accept": "application/json",
                    "X-CSRF-Token": token},
          body: JSON.stringify({useful: button.dataset.useful === "true", comment: comment})
        }).then(function (response) {
          return response.json().then(function (body) { return [response, body]; });
        }).then(function (pair) {
          if (pair[0].ok) {
            status.textContent = box.dataset.thanks;
            box.querySelectorAll("button.rate").forEach(function (b) {
              b.classList.toggle("chosen", b === button);
            });
          } else {
            status.textContent = pair[1].detail || box.dataset.failed;
          }
        }).catch(function () { status.textContent = box.dataset.failed; });
      });
    });
  });
}());
