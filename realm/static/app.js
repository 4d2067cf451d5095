// realm's web client: one WebSocket to /ws, one text message per line.
// Everything from the wire is shown with textContent, never as markup.
"use strict";

(() => {
  // The wire's words (realm/wire.py): tests/test_page.py runs each of these
  // patterns on lines made with wire.py's own templates, so keep them plain,
  // one a line. Lines are matched without their leading "*** ".
  const NAME = String.raw`[A-Za-z][A-Za-z0-9_-]{0,19}`;
  const WIRE = {
    chat: new RegExp(String.raw`^(${NAME}): (.*)$`, "s"),
    error: /^Error: /,
    unsent: /^Error: .*\bnot sent\.$/s,
    entered: new RegExp(String.raw`^(${NAME}) has entered the realm \((\d+)/(\d+)\)$`),
    departed: new RegExp(String.raw`^(${NAME}) (has left the realm|has been dismissed by the Lord|was silent too long and has been shown out) \((\d+)/(\d+)\)$`),
    who: /^In the realm '([^']*)' \((\d+)\/(\d+)\): (.*)$/,
    dismissed: new RegExp(String.raw`^You have dismissed (${NAME}), (\d+)/(\d+) left`),
    welcome: /^Welcome to the Game of Thrones(?:!.*? The realm holds ([^;]+);)?/s,
    askPassword: /^This realm's Lord must prove it/,
    askName: /^What is your name\? /,
    farewell: new RegExp(String.raw`^Farewell, (${NAME})\.$`),
    parting: /Farewell|^The Lord has left the realm\./,
    event: /^\[New Event\] /,
    options: /^(.*?)(1 [^?]+?)( or )(2 [^?]+?)(\?\s*)$/s,
    report: /^\[Realm\] (.*?) ([A-Z][a-z]+ \d+(?: \([+-]\d+\))?(?: \u00b7 [A-Z][a-z]+ \d+(?: \([+-]\d+\))?)*)$/s,
    holding: /([A-Z][a-z]+) (\d+)(?: \(([+-]\d+)\))?/g,
    reignEnded: /^\[Reign Ended\] (Won|Fallen|Abandoned): (.*?) \((\d+) events?, score (-?\d+)\)(?:\. A new reign begins with (.+)\.)?$/s,
  };

  const $ = (id) => document.getElementById(id);
  const ui = {
    join: $("join"), joinForm: $("join-form"), name: $("name"), realm: $("realm"),
    passwordRow: $("password-row"), password: $("password"),
    joinError: $("join-error"), joinHint: $("join-hint"), joinButton: $("join-button"),
    log: $("log"), members: $("members"), count: $("count"),
    sayForm: $("say-form"), input: $("input"), send: $("send"), hints: $("hints"),
    newer: $("newer"),
    dropped: $("dropped"), droppedText: $("dropped-text"), rejoin: $("rejoin"),
    status: $("status"), where: $("where"),
    reign: $("reign"), holdings: $("holdings"), news: $("reign-news"),
    over: $("reign-over"), next: $("reign-next"), outcome: $("reign-outcome"), score: $("reign-score"),
    events: $("reign-events"), why: $("reign-why"),
  };
  const MAX_LOG = 5000;
  const PALETTE = 8; // member colours, see style.css .c0 … .c7
  const SAY = ui.input.placeholder; // what the line input invites once joined
  const OUTCOMES = { Won: "The reign is won", Fallen: "The realm has fallen",
    Abandoned: "The reign is abandoned" };

  // phase: offline | naming | password | playing
  const state = {
    ws: null, phase: "offline", me: "", realm: "", farewell: "", leaving: false, full: false,
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

  // NAME@REALM typed as the name (the protocol's own form): the realm goes
  // to its field, so the page knows its own name when the server says it.
  const typedName = () => ui.name.value.trim().split("@")[0].trim();
  const splitRealm = () => {
    const at = ui.name.value.indexOf("@");
    if (at < 0) return;
    const realm = ui.name.value.slice(at + 1).trim();
    if (realm) ui.realm.value = realm; // "Bran@" leaves a realm typed in its field
    ui.name.value = typedName();
  };

  const showPassword = () => {
    const lordish = typedName().toLowerCase() === "lord";
    ui.passwordRow.hidden = !(lordish || state.phase === "password");
  };

  // -- the log ---------------------------------------------------------------
  const element = (tag, cls, text) => {
    const e = document.createElement(tag);
    e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  // The log follows new lines while the reader is at its end; scrolling
  // up to read stops that until they scroll back down.
  let follow = true;
  let height = ui.log.clientHeight;
  // Once a frame, not once a line: each scroll lays the whole log out, and
  // a busy realm sends many lines a frame.
  let scrolling = false;
  const toEnd = () => {
    if (scrolling) return;
    scrolling = true;
    requestAnimationFrame(() => {
      scrolling = false;
      ui.log.scrollTop = ui.log.scrollHeight;
    });
  };
  ui.log.addEventListener("scroll", () => {
    const log = ui.log;
    if (log.clientHeight !== height) return; // a resize, not the reader
    follow = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
    if (follow) ui.newer.hidden = true;
  });
  // Lines that came while the reader was up the log: a button to them.
  ui.newer.addEventListener("click", () => {
    follow = true;
    ui.newer.hidden = true;
    toEnd();
  });
  new ResizeObserver(() => {
    height = ui.log.clientHeight;
    if (follow) toEnd();
  }).observe(ui.log);

  // The log's children are the lines received, and nothing else: tools
  // read them as such. What the player sent is shown among them from the
  // log's shadow tree, where each line received has its slot, in order.
  const shown = ui.log.attachShadow({ mode: "open" });
  const sheet = document.createElement("link");
  sheet.rel = "stylesheet";
  sheet.href = "style.css";
  shown.append(sheet);
  let lines = 0;

  const append = (el, own = false) => {
    if (!own) {
      const slot = document.createElement("slot");
      slot.name = el.slot = `line-${lines++}`;
      ui.log.append(el);
      el = slot;
    }
    shown.append(el);
    while (shown.childElementCount > MAX_LOG + 1) { // + 1: the sheet
      const oldest = sheet.nextElementSibling;
      if (oldest instanceof HTMLSlotElement) oldest.assignedElements().forEach((e) => e.remove());
      oldest.remove();
    }
    if (follow) toEnd();
    else ui.newer.hidden = false;
  };

  // A line wraps with a hanging indent (style.css .line): its wrapped rows
  // start further in than any line does, so no wrap can pass for a sender.
  const chatLine = (cls, who, text) => {
    const el = element("p", `line chat ${cls} ${colour(who)}`);
    el.dataset.who = who;
    el.append(element("span", "who", `${who}:`), element("span", "text", ` ${text}`));
    return el;
  };

  // The Lord's option buttons of the event in play; an event over, they go
  // quiet (a "1" now would decide the event in play, not that one).
  let options = [];
  // The retired option that had the focus (its index), if one had: the
  // next event's first option gets it, or the same one if it comes back.
  let focusedOption = null;
  // Those the Lord's last line retired, while the server may still refuse
  // that line (too fast...): then the event is undecided, and they return.
  let unsent = [];
  const retireOptions = () => {
    options.forEach((b, i) => {
      if (document.activeElement === b) focusedOption = i; // else lost, to <body>
      b.disabled = true;
    });
    unsent = [];
    options = [];
  };
  const restoreOptions = () => {
    if (!unsent.length) return;
    for (const b of unsent) b.disabled = false;
    const lost = !document.activeElement || document.activeElement === document.body;
    if (focusedOption !== null && lost) unsent[focusedOption].focus(); // where it was
    focusedOption = null;
    options = unsent;
    unsent = [];
  };

  const eventLine = (text) => {
    retireOptions();
    const refocus = focusedOption !== null;
    focusedOption = null;
    if (!ui.over.hidden) ui.next.textContent = "A new reign has begun.";
    const el = element("p", "line event");
    const m = WIRE.options.exec(text);
    if (!m) {
      el.textContent = text;
      return el;
    }
    el.append(m[1]);
    [m[2], m[4]].forEach((option, i) => {
      const b = element(isLord() ? "button" : "span", "option", option);
      if (isLord()) {
        b.type = "button";
        b.title = `Decide: send "${i + 1}"`;
        b.addEventListener("click", () => say(String(i + 1)));
        options.push(b);
        if (i === 0 && refocus) {
          queueMicrotask(() => { // once the line is in the log; unless the Lord went elsewhere
            const at = document.activeElement;
            if (at === document.body || at.disabled) b.focus(); // (a disabled one: not Chromium)
          });
        }
      }
      el.append(b);
      if (i === 0) el.append(m[3]);
    });
    el.append(m[5]);
    return el;
  };

  // -- the reign: holdings that move, and its end ------------------------------
  const holding = (name) => {
    let li = ui.holdings.querySelector(`li[data-name="${name}"]`);
    if (li) return li;
    li = element("li", "holding");
    li.dataset.name = name;
    const bar = element("span", "meter");
    bar.append(element("span", "fill"));
    li.append(element("span", "name", name), element("span", "value"),
      element("span", "change"), bar);
    ui.holdings.append(li);
    void bar.offsetWidth; // laid out at 0 first, so the first value moves in too
    return li;
  };

  const clamped = (n) => `${Math.max(0, Math.min(100, n))}%`;

  // The holdings of `list` ("Gold 45 (-5) · Food 50 ..."); `from` moves
  // each bar from where its reign began (a new reign's first report).
  const showHoldings = (list, from) => {
    ui.reign.hidden = false;
    for (const [, name, value, change] of list.matchAll(WIRE.holding)) {
      const li = holding(name);
      const n = Number(value);
      const fill = li.querySelector(".fill");
      if (from) {
        fill.style.transition = "none";
        fill.style.width = clamped(n - Number(change || 0));
        void fill.offsetWidth;
        fill.style.transition = "";
      }
      li.querySelector(".value").textContent = value;
      const delta = li.querySelector(".change");
      delta.textContent = change ? change.replace("-", "\u2212") : "";
      delta.dataset.way = change ? (change.startsWith("-") ? "down" : "up") : "";
      li.dataset.level = n <= 20 ? "low" : n >= 80 ? "high" : "";
      // CSSOM, not markup: the strict CSP allows it, and the bar's width
      // moves with a CSS transition.
      fill.style.width = clamped(n);
    }
  };

  const reported = (text, list) => {
    const fresh = !ui.over.hidden; // the first report of a new reign
    ui.over.hidden = true; // a new reign's first report ends the last's card
    ui.news.textContent = text;
    showHoldings(list, fresh);
  };

  const reignEnded = (m) => {
    const [, outcome, why, events, score, next] = m;
    ui.reign.hidden = false;
    ui.over.hidden = false;
    ui.over.dataset.outcome = outcome.toLowerCase();
    ui.news.textContent = "";
    if (next) showHoldings(next, false); // the bars move to the new reign's
    ui.next.textContent = next ? "A new reign begins with the holdings above."
      : "A new reign begins with the next event.";
    ui.outcome.textContent = OUTCOMES[outcome];
    ui.score.textContent = `Score ${score}`;
    ui.events.textContent = `${events} ${events === "1" ? "event" : "events"}`;
    ui.why.textContent = why;
    // On a short window the side panel scrolls: bring the card into it.
    if (ui.over.offsetParent) ui.over.scrollIntoView({ block: "nearest" });
  };

  // One received line: one child of the log, its text the line (system
  // lines without their leading "*** ").
  const received = (line) => {
    let el;
    if (line.startsWith("*** ")) {
      const text = line.slice(4);
      let m;
      if (WIRE.error.test(text)) {
        el = element("p", "line error", text);
        if (WIRE.parting.test(text)) state.farewell = text; // e.g. timed out
        if (WIRE.unsent.test(text)) restoreOptions(); // refused lines come back in order
        joinRefused(text);
      } else if (WIRE.event.test(text)) {
        el = eventLine(text);
      } else if ((m = WIRE.report.exec(text))) {
        el = element("p", "line report", text);
        retireOptions();
        reported(m[1], m[2]);
      } else if ((m = WIRE.reignEnded.exec(text))) {
        el = element("p", `line reign-end ${m[1].toLowerCase()}`, text);
        reignEnded(m);
      } else if (WIRE.askName.test(text)) {
        return; // the page sends the name itself, from its form
      } else {
        el = element("p", "line system", text);
        if ((m = WIRE.welcome.exec(text))) {
          el.classList.add("banner");
          if (m[1]) showHoldings(m[1], false); // (another server's may not say them)
        }
        if (text.startsWith("  ")) el.classList.add("table"); // --help's rows: columns
        notice(text);
      }
    } else {
      const m = WIRE.chat.exec(line);
      el = m ? chatLine("other", m[1], m[2]) : element("p", "line system", line);
    }
    append(el);
  };

  // What the player sent, echoed locally: the server does not echo chat.
  const echo = (line) => {
    const el = line.startsWith("--") ? element("p", "line command", line)
      : chatLine("own", state.me, line);
    el.dataset.own = "true";
    append(el, true);
  };

  // -- members -----------------------------------------------------------------
  const renderMembers = () => {
    const items = [...state.members.values()].map((name) => {
      const li = element("li", colour(name), name);
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
    state.full = n === size;
  };

  const notice = (text) => {
    let m = WIRE.who.exec(text);
    if (m) {
      state.realm = m[1];
      ui.where.textContent = `realm '${m[1]}'`;
      setCount(m[2], m[3]);
      state.members = new Map(m[4].split(", ").filter(Boolean)
        .map((n) => [n.toLowerCase(), n]));
      renderMembers();
    } else if ((m = WIRE.dismissed.exec(text))) {
      state.members.delete(m[1].toLowerCase());
      setCount(m[2], m[3]);
      renderMembers();
    } else if ((m = WIRE.entered.exec(text))) {
      state.members.set(m[1].toLowerCase(), m[1]);
      if (state.phase !== "playing" && m[1] === state.me) joined();
      setCount(m[2], m[3]);
      renderMembers();
    } else if ((m = WIRE.departed.exec(text))) {
      state.members.delete(m[1].toLowerCase());
      setCount(m[3], m[4]);
      renderMembers();
    } else if (WIRE.parting.test(text)) {
      state.farewell = text; // the server says why before it closes
    } else if (state.phase === "naming" && WIRE.askPassword.test(text)) {
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
    // Lines are said once in a realm: before that, what is typed in the line
    // input would be taken for a name.
    const playing = phase === "playing";
    ui.input.disabled = !playing;
    ui.send.disabled = !playing;
    ui.input.placeholder = playing ? SAY : "Join first";
    for (const b of ui.hints.querySelectorAll("button")) b.disabled = !playing;
    ui.join.hidden = playing;
    ui.joinButton.textContent = phase === "password" ? "Send password" : "Join";
    showPassword();
  };

  const showJoinError = (text) => {
    // The note keeps its height whatever it says (style.css .form-note).
    ui.joinError.textContent = text;
    ui.joinError.hidden = !text;
    ui.joinHint.hidden = Boolean(text);
  };

  const joined = () => {
    setPhase("playing");
    showJoinError("");
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
    setStatus("connecting", "choose a name");
    showJoinError(text.replace(WIRE.error, ""));
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
    state.leaving = false;
    setStatus("connecting", "connecting…");
    ui.dropped.hidden = true;
    showJoinError(""); // what the last connection was told is over
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
    // Leaving by choice is a goodbye; anything else is news to be told.
    const left = state.leaving;
    let text;
    if (left) text = "You left the realm.";
    else if (state.farewell) text = `Disconnected: ${state.farewell}`;
    else if (was === "offline") text = "Could not reach the realm's server.";
    else if (e.code === 1000) text = "The server closed the connection.";
    else {
      const code = e.code && e.code !== 1006 ? ` (code ${e.code})` : "";
      text = `The connection to the realm was lost${code}.`;
    }
    state.members.clear();
    renderMembers();
    document.body.dataset.gone = ""; // the members' panel: no realm now, not "no one yet"
    ui.count.textContent = "";
    state.full = false;
    retireOptions();
    ui.reign.hidden = true; // the reign's holdings went with the game
    ui.holdings.replaceChildren();
    ui.news.textContent = "";
    ui.over.hidden = true;
    if (!left && (was === "naming" || was === "password")) {
      showJoinError(text); // still choosing a name: the form stays, to change it
      ui.name.focus();
      return;
    }
    ui.droppedText.textContent = text;
    ui.dropped.dataset.kind = left ? "left" : "lost";
    ui.dropped.setAttribute("role", left ? "status" : "alert");
    ui.dropped.hidden = false;
    ui.join.hidden = true; // "Join again" is the way back in
    ui.rejoin.focus();
  };

  // -- what the player does ----------------------------------------------------------
  // The server's limit on a line, in bytes of UTF-8 (a character may take 4).
  const MAX_LINE = 1024;
  const encoder = new TextEncoder();

  // Whether `line` is --leave as the server reads commands (any case, words after).
  const isLeave = (line) => line.startsWith("--") &&
    line.slice(2).trim().split(" ")[0].toLowerCase() === "leave";

  // Say `line`; whether it went (a line over the limit stays to be cut).
  const say = (line) => {
    if (!line || state.phase !== "playing") return false;
    const size = encoder.encode(line).length;
    if (size > MAX_LINE) {
      append(element("p", "line error", `Your line is ${size} bytes; a line may take ` +
        `${MAX_LINE}. It was not sent: shorten it and send it again.`), true);
      return false;
    }
    if (!send(line)) return false;
    if (isLeave(line)) state.leaving = true;
    // The Lord's first chat line after an event decides it: its options go
    // quiet, and come back if the server refuses that line while it is the
    // last one sent (after another, a refusal may be the other's).
    const retired = options;
    if (isLord() && state.full && !line.startsWith("--")) retireOptions();
    unsent = retired === options ? [] : retired;
    echo(line);
    if (state.history[state.history.length - 1] !== line) state.history.push(line);
    if (state.history.length > 200) state.history.shift();
    state.at = state.history.length;
    return true;
  };

  ui.joinForm.addEventListener("submit", (e) => {
    e.preventDefault();
    splitRealm();
    if (!ui.name.value.trim()) {
      showJoinError("Give a name first.");
      ui.name.focus();
      return;
    }
    showJoinError("");
    state.me = stored(ui.name.value.trim());
    if (state.phase === "password" && state.me !== "Lord") {
      // Another name while the Lord's password is asked for: a new
      // connection, rather than a wrong password spent on the way.
      const old = state.ws;
      connect();
      if (old) old.close();
    } else if (state.phase === "password") {
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
    if (!line.trim() || state.phase !== "playing") return;
    if (say(line)) ui.input.value = "";
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
    if (!b || state.phase !== "playing") return;
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
    if (e.key !== "Enter") return;
    e.preventDefault(); // else this same Enter sends the line it fills in
    offerDismiss(e);
  });

  // A Lord who reloads or closes the page ends the game for everyone else
  // there: the browser asks first.
  window.addEventListener("beforeunload", (e) => {
    if (isLord() && state.members.size > 1) {
      e.preventDefault();
      e.returnValue = "leave"; // what browsers before Chrome 119 look for
    }
  });

  ui.rejoin.addEventListener("click", () => {
    ui.dropped.hidden = true;
    ui.join.hidden = false;
    connect(); // with the name and realm still in the form
  });

  setPhase("offline");
  ui.name.focus();
})();
