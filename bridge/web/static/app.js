// The status page: polls api/cameras every second and keeps one card per camera up to date.
// Every value from the gateway (camera names, what cameras say about themselves, errors) is
// set as text, never as markup. Cards are built once and updated in place, so a live view
// keeps playing across updates.
"use strict";

const POLL_MS = 1000;
const MOVE_RENEW_MS = 1000; // the gateway stops a move after 2 s unless it is renewed
const cards = new Map(); // camera name -> {root, last reading, ...}

// The page's own API, as an address without the user:password@ the page may have been opened
// with (the demo prints such URLs): fetch refuses URLs that carry credentials, and the browser
// sends the ones it was given for this origin anyway.
function api(path) {
  return new URL(path, location.origin + location.pathname).href;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function part(card, selector) {
  return card.root.querySelector(selector);
}

// navigator.clipboard exists only on https or localhost; the gateway is usually plain http
// on a LAN, where selecting the text and copying still works.
function copyButton(text) {
  const button = el("button", "copy", "copy");
  button.type = "button";
  button.addEventListener("click", () => {
    const done = () => {
      button.textContent = "copied";
      setTimeout(() => { button.textContent = "copy"; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
      return;
    }
    const area = el("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    done();
  });
  return button;
}

function withCopy(text) {
  const span = el("span", undefined, "copyable");
  span.append(el("code", text), " ", copyButton(text));
  return span;
}

function ago(since) {
  const seconds = Math.max(0, Math.round(Date.now() / 1000 - since));
  const when = new Date(since * 1000).toLocaleString();
  if (seconds < 120) return `since ${when} (${seconds} s)`;
  if (seconds < 7200) return `since ${when} (${Math.round(seconds / 60)} min)`;
  return `since ${when} (${Math.round(seconds / 3600)} h)`;
}

function rate(value, unit) {
  if (value === null) return "–";
  if (unit === "bit/s") {
    if (value >= 1e6) return `${(value / 1e6).toFixed(1)} Mbit/s`;
    return `${Math.round(value / 1e3)} kbit/s`;
  }
  return `${value.toFixed(1)} ${unit}`;
}

async function send(url, body) {
  const response = await fetch(api(url), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error((await response.text()).trim() || response.statusText);
}

function ptzControls(card, name) {
  const box = part(card, ".ptz");
  const problem = part(card, ".ptz-error");
  const url = `api/cameras/${encodeURIComponent(name)}/ptz`;
  // Commands go out one after another, so a quick click's stop never overtakes its move.
  let queue = Promise.resolve();
  const command = (body) => {
    queue = queue
      .then(() => send(url, body))
      .then(() => { problem.textContent = ""; }, (error) => { problem.textContent = error.message; });
  };
  let renew = null;
  const stop = () => {
    if (renew === null) return;
    clearInterval(renew);
    renew = null;
    command({ action: "stop" });
  };
  for (const button of box.querySelectorAll("button[data-pan], button[data-tilt], button[data-zoom]")) {
    const move = {
      action: "move",
      pan: Number(button.dataset.pan || 0),
      tilt: Number(button.dataset.tilt || 0),
      zoom: Number(button.dataset.zoom || 0),
    };
    // Pointer events cover mouse, touch and pen: press moves, release (or losing it) stops.
    button.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      button.setPointerCapture(event.pointerId);
      stop();
      command(move);
      renew = setInterval(() => command(move), MOVE_RENEW_MS);
    });
    for (const end of ["pointerup", "pointercancel", "lostpointercapture"]) {
      button.addEventListener(end, stop);
    }
  }
  const select = part(card, ".presets select");
  part(card, ".presets .goto").addEventListener("click", () => {
    if (select.value) command({ action: "preset", token: select.value });
  });
}

async function loadPresets(card, name) {
  const response = await fetch(api(`api/cameras/${encodeURIComponent(name)}/presets`));
  if (!response.ok) return;
  const presets = await response.json();
  const select = part(card, ".presets select");
  select.replaceChildren(...presets.map((preset) => {
    const option = el("option", preset.name || preset.token);
    option.value = preset.token;
    return option;
  }));
  part(card, ".presets").hidden = presets.length === 0;
}

function newCard(camera) {
  const root = document.getElementById("camera-card").content.firstElementChild.cloneNode(true);
  const card = { root, readings: new Map(), state: null, ptzReady: false };
  root.dataset.camera = camera.name;
  part(card, ".name").textContent = camera.name;
  const img = part(card, "img.live");
  img.alt = `live view of ${camera.name}`;
  const toggle = part(card, ".live-toggle");
  toggle.addEventListener("click", () => {
    if (img.hidden) {
      img.src = camera.live_url;
      img.hidden = false;
      toggle.textContent = "Stop live view";
    } else {
      img.removeAttribute("src"); // closes the stream
      img.hidden = true;
      toggle.textContent = "Live view";
    }
  });
  part(card, "a.snapshot").href = camera.snapshot_url;
  return card;
}

function profileRow(card, profile, now) {
  // Rates per viewer, from the change of the totals since the previous reading.
  const previous = card.readings.get(profile.name);
  card.readings.set(profile.name, { t: now, frames: profile.frames_out, bytes: profile.bytes_out });
  let fps = null;
  let bitrate = null;
  const viewers = profile.viewers.length;
  if (previous && viewers > 0 && now > previous.t) {
    const seconds = (now - previous.t) / 1000;
    fps = Math.max(0, profile.frames_out - previous.frames) / seconds / viewers;
    bitrate = (Math.max(0, profile.bytes_out - previous.bytes) * 8) / seconds / viewers;
  }
  const row = el("tr");
  row.dataset.profile = profile.name;
  const stream = el("td");
  stream.append(el("strong", profile.name), " ", withCopy(profile.url));
  const who = el("td");
  who.append(...profile.viewers.map((v) => el("div", `${v.address} (${v.transport})`)));
  row.append(stream, el("td", rate(fps, "fps")), el("td", rate(bitrate, "bit/s")), who);
  return row;
}

function update(card, camera, now) {
  const state = part(card, ".state");
  state.textContent = camera.state;
  state.dataset.state = camera.state;
  card.root.dataset.state = camera.state;
  part(card, ".since").textContent = ago(camera.since);
  part(card, ".error").textContent = camera.state === "online" ? "" : camera.last_error;
  part(card, ".dialect").textContent = camera.dialect;
  part(card, ".model").textContent = [camera.manufacturer, camera.model].filter(Boolean).join(" ") || "–";
  part(card, ".firmware").textContent = camera.firmware || "–";
  part(card, ".camera-url").textContent = camera.camera_url;
  const input = [];
  if (camera.input_fps !== null) input.push(rate(camera.input_fps, "fps"));
  if (camera.size !== null) input.push(`${camera.size[0]}×${camera.size[1]}`);
  if (camera.jpeg_bytes !== null) input.push(`${Math.round(camera.jpeg_bytes / 1024)} KiB JPEG`);
  const disabled = camera.state === "disabled"; // the config turns it off: nothing is served
  part(card, ".input").textContent =
    input.join(", ") || (disabled ? "disabled in the config" : "not pulled (nobody watches)");
  part(card, ".reconnects").textContent = String(camera.reconnects);
  const onvif = part(card, ".onvif");
  if (camera.onvif_url) {
    onvif.replaceChildren(withCopy(camera.onvif_url), el("div", `on ${camera.onvif_address}`));
  } else {
    onvif.textContent = disabled ? "not served" : "not serving yet";
  }
  part(card, ".view").hidden = disabled;
  part(card, ".profiles").hidden = disabled;
  const rows = camera.profiles.map((profile) => profileRow(card, profile, now));
  if (camera.live_viewers.length > 0) {
    const row = el("tr");
    const who = el("td");
    who.append(...camera.live_viewers.map((v) => el("div", `${v.address} (${v.transport})`)));
    row.append(el("td", "live view"), el("td"), el("td"), who);
    rows.push(row);
  }
  part(card, ".profiles tbody").replaceChildren(...rows);
  // A live view that ended while the camera was away starts again when it is back.
  const img = part(card, "img.live");
  if (!img.hidden && camera.state === "online" && card.state !== null && card.state !== "online") {
    img.src = `${camera.live_url}?t=${now}`;
  }
  card.state = camera.state;
  if (camera.ptz && !card.ptzReady) {
    card.ptzReady = true;
    part(card, ".ptz").hidden = false;
    part(card, ".ptz .pad").hidden = !camera.ptz.move;
    part(card, ".ptz .zoom").hidden = !camera.ptz.zoom;
    ptzControls(card, camera.name);
    if (camera.ptz.presets) loadPresets(card, camera.name);
  }
}

function showFound(found) {
  const section = document.getElementById("found");
  section.hidden = found.length === 0;
  document.getElementById("found-list").replaceChildren(...found.map((camera) => {
    const item = el("article", undefined, "found");
    item.append(el("h3", `${camera.url} — ${camera.dialect} ${camera.model}`));
    const config = el("pre", camera.config);
    item.append(config, copyButton(camera.config));
    return item;
  }));
}

function render(status) {
  const now = Date.now();
  document.getElementById("version").textContent = status.version;
  const list = document.getElementById("cameras");
  const names = new Set(status.cameras.map((camera) => camera.name));
  for (const [name, card] of cards) {
    if (!names.has(name)) {
      card.root.remove();
      cards.delete(name);
    }
  }
  status.cameras.forEach((camera, index) => {
    let card = cards.get(camera.name);
    if (!card) {
      card = newCard(camera);
      cards.set(camera.name, card);
    }
    if (list.children[index] !== card.root) list.insertBefore(card.root, list.children[index] || null);
    update(card, camera, now);
  });
  const count = (state) => status.cameras.filter((camera) => camera.state === state).length;
  const [online, disabled] = [count("online"), count("disabled")];
  const served = `${online} of ${status.cameras.length - disabled} cameras online`;
  document.getElementById("summary").textContent =
    `${served}${disabled ? `, ${disabled} disabled` : ""}, updated ${new Date(now).toLocaleTimeString()}`;
  showFound(status.found);
}

async function poll() {
  try {
    const response = await fetch(api("api/cameras"), { cache: "no-store" });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    render(await response.json());
  } catch (error) {
    document.getElementById("summary").textContent = `cannot reach the gateway: ${error.message}`;
  }
  setTimeout(poll, POLL_MS);
}

poll();
