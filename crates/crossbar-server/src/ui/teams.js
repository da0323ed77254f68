// Teams and roles. The Teams page (#/teams): each team's limits and what its keys together
// spent against its budgets, with the actions the caller's role may take (a new key for admins
// and team admins, a new team for admins). What the caller is comes from
// GET /v1/crossbar/whoami: pages and actions its role may not use are hidden (the server
// refuses them regardless). Loaded after app.js, whose helpers and `pages` it uses.
"use strict";

/** The caller, as /v1/crossbar/whoami says (admin until it answers: an open gateway's). */
const who = { role: "admin", team: null, teamName: null };
/** Pages a role does not see: agent runs are no team's. */
const HIDDEN_PAGES = { "team-admin": ["runs"], viewer: [], admin: [] };
/** The secret of a key just made here, shown once. */
let madeKey = null;

/** Whether the caller's role is among `roles` (a space-separated list). */
function may(roles) {
  return roles.split(" ").includes(who.role);
}

/** Hides what the role may not use: nav links, and any element marked `data-needs`. */
function applyRole() {
  document.body.dataset.role = who.role;
  const hidden = HIDDEN_PAGES[who.role] || [];
  for (const a of document.querySelectorAll("nav a[data-page]")) a.hidden = hidden.includes(a.dataset.page);
  for (const node of document.querySelectorAll("[data-needs]")) node.hidden = !may(node.dataset.needs);
  let badge = document.getElementById("role");
  if (!badge) {
    badge = h("div", { id: "role", class: "role muted", "data-field": "role" });
    document.querySelector("nav .live").before(badge);
  }
  badge.textContent = who.teamName ? `${who.role} · ${who.teamName}` : who.role;
}

async function adminCall(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { accept: "application/json", "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const answer = await response.json().catch(() => null);
  if (!response.ok) throw new Error(answer && answer.error ? answer.error.message : `${response.status}`);
  return answer;
}

async function newKey(team) {
  try {
    const made = await adminCall("POST", "/admin/keys", { team: team.id });
    madeKey = { team: team.id, id: made.id, secret: made.key };
    showError(null);
  } catch (error) {
    showError(`Could not create a key: ${error.message}`);
  }
  refresh(false);
}

async function newTeam() {
  const name = window.prompt("Name of the new team");
  if (!name) return;
  try {
    await adminCall("POST", "/admin/teams", { name });
    showError(null);
  } catch (error) {
    showError(`Could not create the team: ${error.message}`);
  }
  refresh(false);
}

function limitText(team) {
  const parts = [];
  if (team.rpm != null) parts.push(`${fmt.int(team.rpm)} req/min`);
  if (team.tpm != null) parts.push(`${fmt.int(team.tpm)} tok/min`);
  return parts.length ? parts.join(" · ") : "none";
}

function spendCell(s, id) {
  return s.budget_usd == null ? h("td", { "data-field": id }, fmt.exact(s.spent), h("div", { class: "muted" }, "no budget")) : budgetCell(s, id);
}

pages.teams = {
  title: "Teams",
  controls() {
    return [h("button", { type: "button", "data-needs": "admin", "data-action": "new-team", hidden: !may("admin"), onclick: newTeam }, "New team")];
  },
  async load() { return getJson("/v1/crossbar/teams"); },
  draw(t) {
    const rows = t.data.map((team) => h("tr", { "data-team": team.id },
      h("td", {}, team.name, h("div", { class: "muted mono" }, team.id)),
      h("td", { class: "num", "data-field": "keys" }, fmt.int(team.keys)),
      h("td", {}, team.models.length ? team.models.join(", ") : h("span", { class: "muted" }, "all")),
      h("td", { "data-field": "limits" }, limitText(team)),
      spendCell(team.spend.day, "day"), spendCell(team.spend.month, "month"), spendCell(team.spend.total, "total"),
      h("td", { class: "num", "data-field": "requests" }, fmt.int(team.spend.total.requests)),
      h("td", {}, h("button", { type: "button", "data-needs": "admin team-admin", "data-action": "new-key", hidden: !may("admin team-admin"),
        onclick: () => newKey(team) }, "New key"))));
    const made = madeKey && t.data.some((team) => team.id === madeKey.team)
      ? card("New key (shown once)", h("p", {}, "Copy it now: only its hash is kept."),
        h("pre", { class: "mono", "data-field": "new-key" }, madeKey.secret))
      : null;
    render(made, card(null, rows.length
      ? table(["team", { label: "keys", num: true }, "models", "limits", "today (UTC)", "this month (UTC)", "lifetime",
        { label: "requests", num: true }, ""], rows, { "data-table": "teams" })
      : h("div", { class: "empty", "data-empty": "teams" }, h("strong", {}, "No teams"),
        "Create one with `crossbar teams create NAME` or POST /admin/teams; keys join one with `--team`.")),
    h("p", { class: "muted" }, "A team's limits and budgets count all its keys together, on top of each key's own."));
  },
};

(async () => {
  try {
    const me = await getJson("/v1/crossbar/whoami");
    who.role = me.role;
    who.team = me.team;
    if (me.team) {
      const teams = await getJson("/v1/crossbar/teams");
      const own = teams.data.find((team) => team.id === me.team);
      who.teamName = own ? own.name : me.team;
    }
  } catch { /* shown by the page's own poll */ }
  applyRole();
  const { name } = parseRoute();
  // The first draw came before this page existed, or before the role was known.
  if (location.hash.startsWith("#/teams") || HIDDEN_PAGES[who.role].includes(name)) {
    if (HIDDEN_PAGES[who.role].includes(name)) location.hash = "#/overview";
    else navigate();
  }
})();

// Controls and pages redraw: keep what the role may not use hidden.
new MutationObserver(() => {
  for (const node of document.querySelectorAll("[data-needs]")) {
    const hide = !may(node.dataset.needs);
    if (node.hidden !== hide) node.hidden = hide;
  }
}).observe(document.body, { childList: true, subtree: true });
