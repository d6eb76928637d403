// Starts the vendored Swagger UI on /openapi.json (a file, not inline: /docs runs under a CSP
// that allows scripts from this server only).
window.ui = SwaggerUIBundle({
  url: document.getElementById("swagger-ui").dataset.openapi,
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
