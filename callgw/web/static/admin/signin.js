// The admin sign-in page (callgw/web/admin.py): signs in with POST /admin/session, keeps the
// CSRF token the session came with, signs out with DELETE. Signed in, it mounts the operator
// dashboard (dashboard.js), which sends the token as X-CSRF-Token on changes.
// Tests: tests/web/test_admin.py (Chromium).

const door = document.getElementById("door");
const status = document.getElementById("status");
let csrf = "";

export function csrfToken() {
  return csrf;
}

function say(text) {
  status.textContent = text;
}

function signedIn(user, token) {
  csrf = token;
  const form = document.getElementById("signin");
  if (form) form.remove();               // names stay unique: no sign-in form once signed in
  const view = document.createElement("section");
  view.id = "signed-in";
  const who = document.createElement("p");
  who.textContent = `Signed in as ${user}.`;
  const out = document.createElement("button");
  out.type = "button";
  out.textContent = "Sign out";
  out.addEventListener("click", signOut);
  const board = document.createElement("div");
  board.className = "dashboard";
  view.append(who, out, board);
  door.replaceChildren(view);
  import("./dashboard.js").then((m) => m.mount(board, {user, csrf: token, say}))
    .catch((e) => say(`the dashboard did not load: ${e.message}`));
  say(`signed in as ${user}`);
}

function showForm() {
  csrf = "";
  window.location.reload();
}

async function signOut() {
  await fetch("/admin/session", {
    method: "DELETE", credentials: "same-origin", headers: {"X-CSRF-Token": csrf},
  });
  showForm();
}

async function signIn(event) {
  event.preventDefault();
  const user = document.getElementById("user").value;
  const password = document.getElementById("password").value;
  if (!user || !password) {
    say("enter your user name and password");
    return;
  }
  say("signing in");
  let answer;
  try {
    answer = await fetch("/admin/session", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({user, password}),
    });
  } catch (e) {
    say("cannot reach callgw");
    return;
  }
  const body = await answer.json().catch(() => ({}));
  if (answer.ok) {
    signedIn(body.user, body.csrf);
  } else if (answer.status === 401) {
    document.getElementById("password").value = "";
    say("wrong user name or password");
  } else if (answer.status === 429) {
    say(`too many failed sign-ins: try again in ${body.retry_after} s`);
  } else if (answer.status === 503) {
    say("callgw is busy: try again in a moment");
  } else {
    say(body.error || `sign-in failed (${answer.status})`);
  }
}

async function start() {
  document.getElementById("signin").addEventListener("submit", signIn);
  const answer = await fetch("/admin/session", {credentials: "same-origin"}).catch(() => null);
  if (answer && answer.ok) {
    const body = await answer.json();
    signedIn(body.user, body.csrf);
  }
}

start();
