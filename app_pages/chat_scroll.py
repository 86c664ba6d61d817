"""Keeping the Chat page's latest question and answer in view while the page grows."""

import streamlit as st

# A page with a chat input at the bottom sticks to its bottom while it grows: a question's
# streaming answer pushed the question above the screen, and the rerun that shows the finished
# answer with its sources left a long answer's start above it. So, once when the question is
# sent, the question is brought to the top of the screen (a scroll by script also ends the
# sticking, so the answer then grows below it), and once when the answer is written, its start
# is brought back, its question with it when both fit, unless it is on screen. Each is a new
# element whose script runs when it is mounted; it waits (up to a minute on a busy machine)
# for this run's messages, as the previous run's stay until replaced, then keeps them in place
# for three seconds (a question: until its answer has streamed), as Streamlit may scroll back
# down while the page is drawn, and stops at once when the reader scrolls, clicks or types.
SHOW_LATEST_TURN = """<script data-turn="%s">
(() => {
  const pin = %s;
  const started = Date.now();
  let seen = 0;
  const show = () => {
    const turn = document.querySelectorAll("[data-testid=stChatMessage]");
    if (turn.length !== %d) return;
    seen = seen || Date.now();
    const [question, answer] = [turn[turn.length - 2], turn[turn.length - 1]];
    const header = document.querySelector("[data-testid=stHeader]");
    // under the header, with a little room: a message's box starts above its avatar
    const below = (header ? header.getBoundingClientRect().bottom : 0) + 16;
    const asked = question.getBoundingClientRect().top;
    const top = answer.getBoundingClientRect().top;
    if (pin ? Math.abs(asked - below) < 2 : top >= below && top < innerHeight - 100) return;
    const target = pin || top - asked < innerHeight / 2 ? question : answer;
    target.style.scrollMarginTop = below + "px";
    target.scrollIntoView({block: "start"});
  };
  const stop = () => clearInterval(timer);
  // A pinned question is held while its answer streams (the Stop button is up): on a page
  // still short enough to end on screen, Streamlit sticks to the bottom again, and the
  // growing answer pushed the question off the top once the three seconds were over.
  const streaming = () => pin && document.querySelector(".st-key-stop");
  const timer = setInterval(() => {
    show();
    if (Date.now() - (seen || started) > (seen ? 3000 : 60000) && !streaming()) stop();
  }, 100);
  for (const event of ["wheel", "pointerdown", "keydown", "touchstart"])
    window.addEventListener(event, stop, {once: true, capture: true});
})();
</script>"""


def show_latest_turn(turns: int, phase: str) -> None:
    """`turns`: the conversation's turns on the page; `phase`: "asked" or "written"."""
    st.html(SHOW_LATEST_TURN % (f"{phase}-{turns}", str(phase == "asked").lower(), 2 * turns),
            unsafe_allow_javascript=True)
