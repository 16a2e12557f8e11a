// The participant's page behind a join link (docs/signaling.md, protocol v1): device check,
// then the socket; the lobby until the court admits them, the hearing room, the end.
// The parts live in /static/hearing/; this module wires the page's buttons and the flow.
import { deviceCheck } from "/static/devicecheck.js";
import { $ } from "/static/hearing/dom.js";
import { setupConsole } from "/static/hearing/console.js";
import { setupConsult } from "/static/hearing/consult.js";
import { openExhibits, setupExhibits } from "/static/hearing/exhibits.js";
import {
  setCameraOff, setMicMuted, startScreenShare, stopScreenShare, useLocalStream,
} from "/static/hearing/media.js";
import { askIdDigits, setupIdDigits } from "/static/hearing/id-digits.js";
import { setupAudioUnblock, setupTranscript } from "/static/hearing/room.js";
import { connect, leave } from "/static/hearing/signaling.js";
import { S, isObserver, render, send } from "/static/hearing/state.js";
import "/static/hearing/frame.js";

$("btn-mute").addEventListener("click", () => setMicMuted(!S.micMuted));
$("btn-camera").addEventListener("click", () => setCameraOff(!S.cameraOff));
$("btn-hand").addEventListener("click", () => {
  S.handRaised = !S.handRaised;
  send({ type: "hand", raised: S.handRaised });
  render();
});
$("btn-screen").addEventListener("click", () => (S.screen ? stopScreenShare() : startScreenShare()));
$("btn-exhibit").addEventListener("click", openExhibits);
setupConsole();
setupConsult();
setupExhibits();
setupTranscript();
setupAudioUnblock();
setupIdDigits();

window.addEventListener("pagehide", leave);
// Everything drawn by script is drawn again in the other language.
window.addEventListener("langchange", () => render());

async function start() {
  if (isObserver()) {
    // Observers only watch: no device check, no camera or microphone asked for.
    useLocalStream(null);
  } else {
    render();
    const stream = await deviceCheck($("device-check"), { video: true, audio: true, kiosk: S.kiosk });
    useLocalStream(stream);
  }
  // The court has the last digits of their ID number: asked for before the first join.
  if (S.idDigitsOnFile) await askIdDigits();
  // Only now: the others see this person as present once they have chosen their devices.
  connect();
}

start();
