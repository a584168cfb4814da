// cardd's web page: upload photos to /v1/detect, draw the masks, boxes and labels
// on a canvas, and filter by score without uploading again. No dependencies.
"use strict";

const state = { classes: [], colours: new Map(), results: [], files: [], keyNeeded: false };
const $ = (id) => document.getElementById(id);

function threshold() {
  return parseFloat($("threshold").value);
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

// COCO run-length encoding ("counts" as text, column-major) -> run lengths.
function decodeCounts(text) {
  const counts = [];
  let p = 0;
  while (p < text.length) {
    let x = 0, k = 0, more = 1;
    while (more) {
      const c = text.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20;
      p += 1;
      k += 1;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

// the model's colour of a dataset category id (/health: category_ids and palette)
function rgbOf(categoryId) {
  return state.colours.get(categoryId) || [255, 0, 0];
}

// WCAG relative luminance: black text above 0.179, white below (the higher contrast)
function luminance(rgb) {
  const [r, g, b] = rgb.map((c) => {
    const v = c / 255;
    return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

function colour(categoryId, alpha) {
  const [r, g, b] = rgbOf(categoryId);
  return alpha === undefined ? `rgb(${r},${g},${b})` : `rgba(${r},${g},${b},${alpha})`;
}

function draw(entry) {
  const { canvas, bitmap, response } = entry;
  const width = bitmap.width, height = bitmap.height;
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const shown = response.detections.filter((d) => d.score >= threshold());
  // masks: one overlay, alpha-blended per pixel
  const overlay = ctx.getImageData(0, 0, width, height);
  const px = overlay.data;
  for (const d of shown) {
    if (!d.mask) continue;
    const [r, g, b] = rgbOf(d.category_id);
    const counts = decodeCounts(d.mask.counts);
    let index = 0;
    for (let run = 0; run < counts.length; run += 1) {
      if (run % 2 === 1) {
        for (let i = index; i < index + counts[run]; i += 1) {
          const x = Math.floor(i / height), y = i - x * height;
          const o = (y * width + x) * 4;
          px[o] = px[o] * 0.55 + r * 0.45;
          px[o + 1] = px[o + 1] * 0.55 + g * 0.45;
          px[o + 2] = px[o + 2] * 0.55 + b * 0.45;
        }
      }
      index += counts[run];
    }
  }
  ctx.putImageData(overlay, 0, 0);
  // boxes and labels, sized for the photo
  const line = Math.max(2, Math.round(Math.max(width, height) / 500));
  const font = Math.max(13, Math.round(Math.max(width, height) / 60));
  ctx.font = `600 ${font}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  for (const d of shown) {
    const [x1, y1, x2, y2] = d.bbox_xyxy;
    ctx.lineWidth = line;
    ctx.strokeStyle = colour(d.category_id);
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
  }
  // labels, best score first, each where it covers no earlier label (as cardd/visualize/draw.py)
  const placed = [];
  const h = Math.round(font * 1.35);
  for (const d of [...shown].sort((a, b) => b.score - a.score)) {
    const [x1, y1, x2, y2] = d.bbox_xyxy;
    const text = `${d.label} ${d.score.toFixed(2)}`;
    const w = Math.ceil(ctx.measureText(text).width + font * 0.5);
    const left = Math.max(0, Math.min(x1, width - w));
    const tops = [y1 - h, y1, y2, y2 - h, 1, 2, 3, 4, 5].map((t, i) => (i < 4 ? t : y1 + t * h));
    for (let top of tops) {
      top = Math.max(0, Math.min(height - h, top));
      const rect = [left, top, left + w, top + h];
      if (placed.some((o) => rect[0] < o[2] && o[0] < rect[2] && rect[1] < o[3] && o[1] < rect[3])) continue;
      placed.push(rect);
      ctx.fillStyle = colour(d.category_id, 0.9);
      ctx.fillRect(left, top, w, h);
      const [r, g, b] = rgbOf(d.category_id);
      ctx.fillStyle = luminance([r, g, b]) > 0.179 ? "#000" : "#fff"; // as cardd.structures.classes.text_colour
      ctx.fillText(text, left + font * 0.25, top + font * 0.18);
      break;
    }
  }
  // table, summary and download
  const body = entry.element.querySelector("tbody");
  body.replaceChildren();
  for (const d of shown) {
    const row = document.createElement("tr");
    const name = document.createElement("td");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour(d.category_id);
    name.append(swatch, d.label);
    const score = document.createElement("td");
    score.textContent = d.score.toFixed(3);
    const area = document.createElement("td");
    area.textContent = (d.area_fraction * 100).toFixed(2);
    row.append(name, score, area);
    body.append(row);
  }
  const total = response.detections.length;
  entry.element.querySelector(".summary").textContent =
    `${shown.length} of ${total} detections at score ≥ ${threshold().toFixed(2)}` +
    ` · ${response.width}×${response.height} px · model ${Math.round(response.timing_ms.model)} ms`;
  const filtered = { ...response, score_thr: threshold(), detections: shown };
  const link = entry.element.querySelector(".download");
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([JSON.stringify(filtered, null, 1)], { type: "application/json" }));
  link.download = `${response.image.replace(/\.[^.]*$/, "")}.json`;
  link.hidden = false;
}

function headers() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// POST, and when the service is busy (503) wait as its Retry-After says and try again,
// a few times: a full waiting room is a moment, not an error to show
async function post(url, form) {
  for (let attempt = 1; ; attempt++) {
    const response = await fetch(url, { method: "POST", body: form, headers: headers() });
    if (response.status !== 503 || attempt >= 5) return response;
    const seconds = Number(response.headers.get("Retry-After")) || 2;
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  }
}

async function detect(file) {
  const element = $("result-template").content.firstElementChild.cloneNode(true);
  element.querySelector(".name").textContent = file.name;
  $("results").prepend(element);
  const status = element.querySelector(".status");
  const form = new FormData();
  form.append("image", file, file.name);
  let response;
  try {
    response = await post("v1/detect?score_thr=0", form);
  } catch (error) {
    status.textContent = `the service did not answer (${error.message})`;
    return;
  }
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    status.textContent = body.error || `HTTP ${response.status}`;
    if (response.status === 401) {
      $("key-box").hidden = false;
      showError("This service needs an API key: enter it above and choose the photos again.");
    }
    return;
  }
  status.hidden = true;
  // the picture as the browser shows it: EXIF orientation applied, as the service does
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const entry = { element, canvas: element.querySelector("canvas"), bitmap, response: body };
  state.results.push(entry);
  draw(entry);
}

const isVideo = (file) => file.type.startsWith("video/");

// a video is not detected here: its frames are chosen and assessed with the claim
function showVideo(file) {
  const element = $("result-template").content.firstElementChild.cloneNode(true);
  element.querySelector(".name").textContent = file.name;
  element.querySelector(".status").textContent =
    "a walk-around video: its frames are chosen and assessed with the claim";
  element.querySelector(".body").remove(); // nothing to draw or download for a video
  element.querySelector(".download").remove();
  $("results").prepend(element);
}

async function handle(files) {
  showError("");
  const videos = files.filter(isVideo);
  if (videos.length + state.files.filter(isVideo).length > 1) {
    showError("One video per claim: the service takes a single walk-around video.");
    return;
  }
  for (const file of files) {
    if (isVideo(file)) showVideo(file);
    else await detect(file); // one at a time: the model serves one request at a time anyway
  }
  state.files.push(...files);
  $("claim").hidden = state.files.length === 0;
  const photos = state.files.filter((f) => !isVideo(f)).length;
  const what = [photos ? `${photos} photo${photos === 1 ? "" : "s"}` : "",
    state.files.some(isVideo) ? "the video" : ""];
  $("assess").textContent = `Assess ${what.filter(Boolean).join(" and ")} as one claim`;
}

// the claim of every photo shown: POST /v1/assess, the claim.json of `cardd assess`
async function assess() {
  const form = new FormData();
  for (const file of state.files) form.append(isVideo(file) ? "video" : "image", file, file.name);
  $("claim-status").textContent = state.files.some(isVideo)
    ? "assessing: the video's frames are read one by one (about a second each on a CPU)…"
    : "assessing…";
  let response;
  try {
    // the slider is the least score assessed, as cardd assess --score-thr
    const url = `v1/assess?score_thr=${threshold()}`;
    response = await post(url, form);
  } catch (error) {
    $("claim-status").textContent = `the service did not answer (${error.message})`;
    return;
  }
  const claim = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    $("claim-status").textContent = claim.error || `HTTP ${response.status}`;
    return;
  }
  const sized = claim.size_relative_to === "part" ? "by car part" : "relative to the photo (no parts model)";
  $("claim-status").textContent =
    `claim ${claim.status}: ${claim.findings.length} findings, ${claim.photos_usable} of ` +
    `${claim.photos_total} photos usable` +
    claim.videos.map((v) => `, ${v.frames_kept} of ${v.frames_sampled} video frames used`).join("") +
    `, sizes ${sized}` +
    (claim.reasons.length ? ` (${claim.reasons.join("; ")})` : "");
  const body = $("findings").querySelector("tbody");
  body.replaceChildren();
  for (const f of claim.findings) {
    const row = document.createElement("tr");
    // a video's damage: the seconds of its cited frames; a photo's: how many photos
    const cited = f.video
      ? `${f.evidence.filter((e) => e.time !== null).map((e) => `${e.time.toFixed(1)} s`).join(", ")}`
      : `${f.photos.length} photos`;
    const cells = [f.part || "–", f.damage, f.severity || "–", f.operation || "–",
      f.score.toFixed(2), f.status, cited];
    for (const value of cells) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    row.children[5].className = f.status;
    body.append(row);
  }
  $("findings").hidden = claim.findings.length === 0;
  const skipped = claim.videos.map((v) => {
    const item = document.createElement("li");
    const why = Object.entries(v.skipped).map(([reason, n]) => `${n} ${reason}`).join(", ");
    item.textContent = `${v.name}: ${v.frames_read} frames read, ${v.frames_kept} used` +
      (why ? `; skipped ${why}` : "");
    return item;
  });
  $("retakes").replaceChildren(...skipped, ...claim.photos.filter((p) => !p.usable).map((p) => {
    const item = document.createElement("li");
    item.textContent = `retake ${p.name}: ${p.retake.join(", ")}`;
    return item;
  }));
}

function setUp() {
  $("files").addEventListener("change", (e) => handle([...e.target.files]));
  $("camera").addEventListener("change", (e) => handle([...e.target.files]));
  $("assess").addEventListener("click", assess);
  $("threshold").addEventListener("input", () => {
    $("threshold-value").textContent = threshold().toFixed(2);
    state.results.forEach(draw);
  });
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((type) =>
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((type) =>
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => handle([...e.dataTransfer.files].filter((f) =>
    f.type.startsWith("image/") || isVideo(f))));
  fetch("health")
    .then((r) => r.json())
    .then((health) => {
      state.classes = health.classes;
      state.colours = new Map(health.category_ids.map((id, i) => [id, health.palette[i]]));
      // the legend: the model's classes in their colours, from /health
      $("legend").replaceChildren(...health.classes.map((name, i) => {
        const item = document.createElement("li");
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = colour(health.category_ids[i]);
        item.append(swatch, name);
        return item;
      }));
      $("threshold").value = health.score_thr;
      $("threshold-value").textContent = Number(health.score_thr).toFixed(2);
      // without the API key, /health leaves out the model file and the device
      const parts = health.checkpoint ? [`model ${health.checkpoint}`, health.device] : [];
      $("model").textContent = [...parts, `cardd ${health.version}`].join(" · ");
      $("key-box").hidden = !health.api_key_required;
    })
    .catch(() => showError("The service did not answer /health."));
}

setUp();
