// The viewer's only script: mounts asciinema-player on each terminal replay region. Everything
// else works without JavaScript. Loaded from /assets under a CSP that forbids inline code.

function mountPlayers() {
  const players = document.querySelectorAll('.player[data-cast]');
  if (players.length === 0 || typeof window.AsciinemaPlayer === 'undefined') return;
  for (const el of players) {
    const player = window.AsciinemaPlayer.create(el.dataset.cast, el, {
      fit: 'width',
      idleTimeLimit: 2,
      controls: true,
      // Keyboard: space plays/pauses, arrows seek, once the player has focus.
      preload: true,
    });
    el.dataset.mounted = 'true';
    player.addEventListener('ended', () => {
      el.dataset.ended = 'true';
    });
  }
}

document.addEventListener('DOMContentLoaded', mountPlayers);
