// Starts the vendored Swagger UI (/docs) or ReDoc (/redoc) on the page govshare/apidocs.py
// serves: kept out of the page itself because our CSP allows no inline script.
(function () {
  "use strict";
  var root = document.getElementById("apidocs");
  if (!root) { return; }
  var url = root.dataset.openapi;
  if (root.dataset.ui === "swagger") {
    window.SwaggerUIBundle({
      url: url,
      dom_id: "#apidocs",
      deepLinking: true,
      // "Try it out" sends the bearer token entered under Authorize.
      persistAuthorization: false,
      validatorUrl: null  // never ask validator.swagger.io about our spec
    });
  } else if (root.dataset.ui === "redoc") {
    // No search worker: it would start from a blob: URL, which script-src 'self' refuses.
    window.Redoc.init(url, { disableSearch: true, hideDownloadButton: false }, root);
  }
}());
