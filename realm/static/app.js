// realm's web client: one WebSocket to /ws, one text message per line.
// Everything from the wire is shown with textContent, never as markup.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    join: $("join"), joinForm: $("join-form"), name: $("name"), realm: $("realm"),
    passwordRow: $("password-row"), password: $("password"),
    joinError: $("join-error"), joinButton: $("join-button"),
    log: $("log"), members: $("members"), count: $("count"),
    sayForm: $("say-form"), input: $("input"), send: $("send"), hints: $("hints"),
    dropped: $("dropped"), droppedText: $("dropped-text"), rejoin: $("rejoin"),
    status: $("status"), where: $("where"),
  };

  const NAME = "[A-Za-z][A-Za-z0-9_-]{0,19}";
  const CHAT = new RegExp(`^(${NAME}): (.*)$`, "s");
  const MOVED = new RegExp(`^(${NAME}) (.+) \\((\\d+)/(\\d+)\\)$`);
  const WHO = new RegExp(`^In the realm '([^']*)' \\((\\d+)/(\\d+)\\): (.*)$`);
  const DISMISSED = new RegExp(`^You have dismissed (${NAME}), (\\d+)/(\\d+) left`);
  const EVENT = "[New Event] ";
  const OPTIONS = /^(.*?)(1 [^?]+?)( or )(2 [^?]+?)(\?\s*)$/s;
  const MAX_LOG = 5000;
  const PALETTE = 8; // member colours, see style.css .c0 … .c7

  // phase: offline | naming | password | playing
  const state = {
    ws: null, phase: "offline", me: "", realm: "", farewell: "",
    members: new Map(), // lower-case name -> shown name
    history: [], at: 0, draft: "",
  };

  // -- names -----------------------------------------------------------------
  const joinLine = () => {
    const name = ui.name.value.trim();
    const realm = ui.realm.value.trim();
    return realm ? `${name}@${realm}` : name;
  };
  // The server stores `ramsey` as `Ramsey`.
  const stored = (name) => name.charAt(0).toUpperCase() + name.slice(1).toLowerCase();
  const isLord = () => state.phase === "playing" && state.me === "Lord";
  // Each member its own colour, in order of first sight: distinct for the
  // first PALETTE names, and stable for the page's life.
  const colours = new Map();
  const colour = (name) => {
    if (name === "Lord") return "lord";
    const key = name.toLowerCase();
    if (!colours.has(key)) colours.set(key, colours.size % PALETTE);
    return `c${colours.get(key)}`;
  };

  const showPassword = () => {
    const lordish = ui.name.value.trim().toLowerCase() === "lord";
    ui.passwordRow.hidden = !(lordish || state.phase === "password");
  };

  // -- the log ---------------------------------------------------------------
  const span = (cls, text) => {
    const s = document.createElement("span");
    s.className = cls;
    s.textContent = text;
    return s;
  };

  // The log follows new lines while the reader is at its end; scrolling
  // up to read stops that until they scroll back down.
  let follow = true;
  let height = ui.log.clientHeight;
  const toEnd = () => { ui.log.scrollTop = ui.log.scrollHeight; };
  ui.log.addEventListener("scroll", () => {
    const log = ui.log;
    if (log.clientHeight !== height) return; // a resize, not the reader
    follow = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
  });
  new ResizeObserver(() => {
    height = ui.log.clientHeight;
    if (follow) toEnd();
  }).observe(ui.log);

  const append = (el) => {
    const log = ui.log;
    log.append(el);
    while (log.childElementCount > MAX_LOG) log.firstElementChild.remove();
    if (follow) toEnd();
  };

  const chatLine = (cls, who, text) => {
    const el = document.createElement("p");
    el.className = `line chat ${cls} ${colour(who)}`;
    el.dataset.who = who;
    el.append(span("who", `${who}:`), span("text", ` ${text}`));
    return el;
  };

  const eventLine = (text) => {
    const el = document.createElement("p");
    el.className = "line event";
    const m = OPTIONS.exec(text);
    if (!m) {
      el.textContent = text;
      return el;
    }
    el.append(m[1]);
    [m[2], m[4]].forEach((option, i) => {
      const b = document.createElement(isLord() ? "button" : "span");
      b.className = "option";
      b.textContent = option;
      if (isLord()) {
        b.type = "button";
        b.title = `Decide: send "${i + 1}"`;
        b.addEventListener("click", () => say(String(i + 1)));
      }
      el.append(b);
      if (i === 0) el.append(m[3]);
    });
    el.append(m[5]);
    return el;
  };

  // One received line: one child of the log, its text the line (system
  // lines without their leading "*** ").
  const received = (line) => {
    let el;
    if (line.startsWith("*** ")) {
      const text = line.slice(4);
      if (text.startsWith("Error: ")) {
        el = document.createElement("p");
        el.className = "line error";
        el.textContent = text;
        if (/Farewell/.test(text)) state.farewell = text; // e.g. timed out
        joinRefused(text);
      } else if (text.startsWith(EVENT)) {
        el = eventLine(text);
      } else {
        el = document.createElement("p");
        el.className = "line system";
        if (/^Welcome to the /.test(text)) el.classList.add("banner");
        el.textContent = text;
        notice(text);
      }
    } else {
      const m = CHAT.exec(line);
      if (m) {
        el = chatLine("other", m[1], m[2]);
      } else {
        el = document.createElement("p");
        el.className = "line system";
        el.textContent = line;
      }
    }
    append(el);
  };

  // What the player sent, echoed locally: the server does not echo chat.
  const echo = (line) => {
    let el;
    if (line.startsWith("--")) {
      el = document.createElement("p");
      el.className = "line command";
      el.textContent = line;
    } else {
      el = chatLine("own", state.me, line);
    }
    el.dataset.own = "true";
    append(el);
  };

  // -- members -----------------------------------------------------------------
  const renderMembers = () => {
    const items = [...state.members.values()].map((name) => {
      const li = document.createElement("li");
      li.className = colour(name);
      li.textContent = name;
      if (name === state.me) li.classList.add("me");
      if (isLord() && name !== state.me) {
        li.title = `--dismiss ${name}`;
        li.tabIndex = 0;
        li.classList.add("dismissable");
      }
      return li;
    });
    ui.members.replaceChildren(...items);
  };

  const setCount = (n, size) => {
    ui.count.textContent = `${n}/${size}`;
  };

  const notice = (text) => {
    let m = WHO.exec(text);
    if (m) {
      state.realm = m[1];
      ui.where.textContent = `realm '${m[1]}'`;
      setCount(m[2], m[3]);
      state.members = new Map(m[4].split(", ").filter(Boolean)
        .map((n) => [n.toLowerCase(), n]));
      renderMembers();
      return;
    }
    m = DISMISSED.exec(text);
    if (m) {
      state.members.delete(m[1].toLowerCase());
      setCount(m[2], m[3]);
      renderMembers();
      return;
    }
    m = MOVED.exec(text);
    if (m) {
      const [, name, what, n, size] = m;
      if (what === "has entered the realm") {
        state.members.set(name.toLowerCase(), name);
        if (state.phase !== "playing" && name === state.me) joined();
      } else {
        state.members.delete(name.toLowerCase());
      }
      setCount(n, size);
      renderMembers();
      return;
    }
    if (/The Lord has left the realm|Farewell/.test(text)) {
      state.farewell = text; // the server says why before it closes
    } else if (state.phase === "naming" && /password/i.test(text)) {
      askPassword();
    }
  };

  // -- phases --------------------------------------------------------------------
  const setStatus = (what, text) => {
    ui.status.dataset.state = what;
    ui.status.textContent = text;
  };

  const setPhase = (phase) => {
    state.phase = phase;
    document.body.dataset.phase = phase;
    const open = phase !== "offline";
    ui.input.disabled = !open;
    ui.send.disabled = !open;
    ui.join.hidden = phase === "playing";
    ui.joinButton.textContent = phase === "password" ? "Send password" : "Join";
    showPassword();
  };

  const joined = () => {
    setPhase("playing");
    ui.joinError.hidden = true;
    ui.password.value = "";
    setStatus("online", `${state.me}`);
    document.body.classList.toggle("is-lord", state.me === "Lord");
    send("--who"); // the others present before us
    ui.input.focus();
  };

  const askPassword = () => {
    if (ui.password.value) {
      send(ui.password.value); // typed in before joining
      ui.password.value = "";
      return;
    }
    setPhase("password");
    ui.password.focus();
  };

  const joinRefused = (text) => {
    if (state.phase !== "naming" && state.phase !== "password") return;
    setPhase("naming");
    ui.joinError.textContent = text.replace(/^Error: /, "");
    ui.joinError.hidden = false;
    ui.name.focus();
  };

  // -- the socket ------------------------------------------------------------------
  const send = (line) => {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(line);
      return true;
    }
    return false;
  };

  const connect = () => {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    const ws = new WebSocket(url);
    state.ws = ws;
    state.farewell = "";
    setStatus("connecting", "connecting…");
    ui.dropped.hidden = true;
    ws.addEventListener("open", () => {
      if (state.ws !== ws) return;
      setPhase("naming");
      setStatus("connecting", "joining…");
      send(joinLine()); // the contract lets a name come before the greeting
    });
    ws.addEventListener("message", (e) => {
      if (state.ws === ws && typeof e.data === "string") received(e.data);
    });
    ws.addEventListener("close", (e) => {
      if (state.ws !== ws) return;
      state.ws = null;
      dropped(e);
    });
  };

  const dropped = (e) => {
    const was = state.phase;
    setPhase("offline");
    setStatus("offline", "offline");
    document.body.classList.remove("is-lord");
    let text;
    if (state.farewell) text = `Disconnected: ${state.farewell}`;
    else if (was === "offline") text = "Could not reach the realm's server.";
    else if (e.code === 1000) text = "The server closed the connection.";
    else {
      const code = e.code && e.code !== 1006 ? ` (code ${e.code})` : "";
      text = `The connection to the realm was lost${code}.`;
    }
    state.members.clear();
    renderMembers();
    ui.count.textContent = "";
    ui.droppedText.textContent = text;
    ui.dropped.hidden = false;
    ui.join.hidden = true; // "Join again" is the way back in
    ui.rejoin.focus();
  };

  // -- what the player does ----------------------------------------------------------
  const say = (line) => {
    if (!line) return;
    if (!send(line)) return;
    if (state.phase === "password") return; // never echo nor keep a password
    if (state.phase === "playing") echo(line);
    if (state.history[state.history.length - 1] !== line) state.history.push(line);
    if (state.history.length > 200) state.history.shift();
    state.at = state.history.length;
  };

  ui.joinForm.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!ui.name.value.trim()) {
      ui.joinError.textContent = "Give a name first.";
      ui.joinError.hidden = false;
      ui.name.focus();
      return;
    }
    ui.joinError.hidden = true;
    state.me = stored(ui.name.value.trim());
    if (state.phase === "password") {
      send(ui.password.value);
      ui.password.value = "";
      setPhase("naming");
    } else if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      send(joinLine());
    } else {
      connect();
    }
  });

  ui.name.addEventListener("input", showPassword);

  ui.sayForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const line = ui.input.value;
    if (!line.trim()) return;
    say(line);
    ui.input.value = "";
  });

  ui.input.addEventListener("keydown", (e) => {
    const h = state.history;
    if (e.key === "ArrowUp" && state.at > 0) {
      if (state.at === h.length) state.draft = ui.input.value;
      state.at -= 1;
      ui.input.value = h[state.at];
    } else if (e.key === "ArrowDown" && state.at < h.length) {
      state.at += 1;
      ui.input.value = state.at === h.length ? state.draft : h[state.at];
    } else return;
    e.preventDefault();
    const end = ui.input.value.length;
    ui.input.setSelectionRange(end, end);
  });

  ui.hints.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-line]");
    if (!b) return;
    ui.input.value = b.dataset.line;
    ui.input.focus();
  });

  const offerDismiss = (e) => {
    const li = e.target.closest("li.dismissable");
    if (!li) return;
    ui.input.value = `--dismiss ${li.textContent}`;
    ui.input.focus();
  };
  ui.members.addEventListener("click", offerDismiss);
  ui.members.addEventListener("keydown", (e) => {
    if (e.key === "Enter") offerDismiss(e);
  });

  ui.rejoin.addEventListener("click", () => {
    ui.dropped.hidden = true;
    ui.join.hidden = false;
    connect(); // with the name and realm still in the form
  });

  setPhase("offline");
  ui.name.focus();
})();
