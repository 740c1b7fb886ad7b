// The viewer's only script: filters apply on change, and a replay button shows that the model
// is working (a replay can take a while) and cannot be pressed twice.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const filters = document.getElementById("filters");
  if (filters) {
    for (const select of filters.querySelectorAll("select")) {
      select.addEventListener("change", () => filters.submit());
    }
  }
  for (const form of document.querySelectorAll('form[action="/replay"]')) {
    form.addEventListener("submit", () => {
      const button = form.querySelector("button");
      if (button) {
        button.disabled = true;
        button.textContent = "replaying…";
      }
    });
  }
});
