// The player: markers on the timeline, a click on the timeline picks the moment to comment on,
// a comment's time seeks the video. No download link, no context menu on the video.
(function () {
  // deleting cannot be undone: the owner confirms it first
  const remove = document.getElementById("delete-form");
  if (remove) remove.addEventListener("submit", (e) => {
    if (!confirm("Delete this recording, its comments and its shares? This cannot be undone.")) e.preventDefault();
  });
  const video = document.getElementById("video");
  if (!video) return;
  const timeline = document.getElementById("timeline");
  const at = document.getElementById("comment-at");
  const text = document.getElementById("comment-text");
  const length = () => (isFinite(video.duration) && video.duration > 0 ? video.duration : parseFloat(document.getElementById("player").dataset.seconds) || 1);
  function place() {
    for (const m of timeline.querySelectorAll(".marker")) {
      m.style.left = (100 * Math.min(1, parseFloat(m.dataset.at) / length())) + "%";
    }
  }
  function seek(seconds) { video.currentTime = seconds; if (at) at.value = seconds.toFixed(2); }
  video.addEventListener("contextmenu", (e) => e.preventDefault());
  video.addEventListener("loadedmetadata", place);
  video.addEventListener("timeupdate", () => { if (at && document.activeElement !== at && video.paused === false) at.value = video.currentTime.toFixed(2); });
  timeline.addEventListener("click", (e) => {
    if (e.target.classList.contains("marker")) { seek(parseFloat(e.target.dataset.at)); return; }
    const box = timeline.getBoundingClientRect();
    seek(length() * Math.max(0, Math.min(1, (e.clientX - box.left) / box.width)));
    if (text) text.focus();
  });
  for (const b of document.querySelectorAll(".seek")) b.addEventListener("click", () => seek(parseFloat(b.dataset.at)));
  place();
})();
