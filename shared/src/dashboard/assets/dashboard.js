// kubectl-gitops dashboard: keeps the open page current. The server tells of changes in
// the cluster over server-sent events; the page then reads itself again and swaps its
// main part in, without a reload. The pages work without this script.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!window.EventSource || !live) {
    return;
  }
  var refreshes = 0;
  var busy = false;
  var again = false;

  function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("main");
        var main = document.getElementById("main");
        if (fresh && main) {
          main.innerHTML = fresh.innerHTML;
          refreshes += 1;
          document.body.setAttribute("data-refreshes", String(refreshes));
        }
      })
      .catch(function () {
        live.textContent = "live updates: a refresh failed";
      })
      .then(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  var source = new EventSource("/events");
  source.onopen = function () {
    live.textContent = "live";
    document.body.setAttribute("data-live", "yes");
    // A state still being checked may have become known before the page listened.
    if (document.querySelector("#main .checking")) {
      refresh();
    }
  };
  source.onerror = function () {
    live.textContent = "live updates: reconnecting";
  };
  source.addEventListener("change", refresh);
})();
