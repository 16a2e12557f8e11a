// On a prison terminal's kiosk a link that cannot be used (ended, refused) must not leave the
// screen stuck: after a short while it goes back to the terminal's own page.
import { t } from "/static/i18n.js";

const RETURN_S = 10;
const line = document.getElementById("kiosk-return");
let left = RETURN_S;

function tick() {
  if (line) line.textContent = t("{n} 秒后返回终端首页", { n: left });
  if (left <= 0) {
    location.replace("/terminal");
    return;
  }
  left -= 1;
  setTimeout(tick, 1000);
}

if (document.body.dataset.kiosk === "1") tick();
