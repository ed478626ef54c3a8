// The "Copy link" button of the patient-link page: an enhancement. Without JavaScript (or
// without clipboard access) the button stays hidden and the link is selectable text.
(function () {
  "use strict";
  if (!navigator.clipboard) return;
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var target = document.querySelector(button.getAttribute("data-copy"));
    if (!target) return;
    var status = document.querySelector(button.getAttribute("data-status"));
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent.trim()).then(
        function () { if (status) status.textContent = "Copied."; },
        function () { if (status) status.textContent = "Could not copy: select the link instead."; }
      );
    });
  });
})();
