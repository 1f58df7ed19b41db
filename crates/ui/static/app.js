// Progressive enhancement only: every page works without this file.
// Filters submit as soon as a choice changes.
document.addEventListener("DOMContentLoaded", () => {
  for (const select of document.querySelectorAll("form.filters select")) {
    select.addEventListener("change", () => select.form.submit());
  }
});
