// The upload page (docs/browser.md). Plain browser JavaScript, no libraries, no build step.
// Limits, accepted types and the auth mode come from GET /limits, never from this file.
"use strict";

(function () {
  const TOKEN_KEY = "imgpipe.token";
  const POLL_MS = 1000;
  const POLL_MAX_MS = 4000;
  const STATES = {
    checking: "checking",
    refused: "not uploaded",
    uploading: "uploading",
    awaiting_upload: "pending",
    pending: "pending",
    processing: "processing",
    done: "done",
    failed: "failed",
  };

  const $ = (id) => document.getElementById(id);
  let limits = null;

  function el(tag, props, children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children || []) {
      node.append(child);
    }
    return node;
  }

  function formatBytes(n) {
    if (n < 1024) return `${n} bytes`;
    const units = ["KiB", "MiB", "GiB"];
    let value = n / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
  }

  function tooLarge(size, max) {
    return `The file is ${size.toLocaleString("en")} bytes; this service takes at most ${max.toLocaleString("en")} bytes (${formatBytes(max)}).`;
  }

  function announce(text) {
    const announcer = $("announcer");
    announcer.textContent = "";
    // A fresh text node after clearing makes screen readers announce repeated messages too.
    window.setTimeout(() => { announcer.textContent = text; }, 50);
  }

  function token() {
    return window.sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function authHeaders() {
    const value = token().trim();
    if (!limits || limits.auth !== "jwt" || !value) return {};
    return { Authorization: value.startsWith("Bearer ") ? value : `Bearer ${value}` };
  }

  // The API's own error shape is {"error": {"code", "message"}}; API Gateway's is {"message"}.
  async function errorOf(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (ignored) {
      body = null;
    }
    if (response.status === 401) {
      return limits && limits.auth === "jwt"
        ? (token() ? "The API refused the token (401 Unauthorized): it may have expired, or be for another service. Paste a fresh token above and upload again."
          : "This service needs a sign-in token (401 Unauthorized): paste your token above and upload again.")
        : "The API answered 401 Unauthorized.";
    }
    if (body && body.error && body.error.message) return `${body.error.message} (${body.error.code})`;
    if (body && body.message) return `${body.message} (HTTP ${response.status})`;
    return `HTTP ${response.status}`;
  }

  class Upload {
    constructor(file) {
      this.file = file;
      this.polls = 0;
      this.state = el("span", { className: "state" });
      this.message = el("p", { className: "message" });
      this.progress = el("progress", { max: 100, value: 0, hidden: true });
      this.progress.setAttribute("aria-label", `Upload progress of ${file.name}`);
      this.results = el("div");
      this.item = el("li", { className: "upload" }, [
        el("div", { className: "upload-head" }, [
          el("span", { className: "upload-name", textContent: file.name }),
          el("span", { textContent: formatBytes(file.size) }),
          this.state,
        ]),
        this.progress,
        this.message,
        this.results,
      ]);
      $("uploads").prepend(this.item);
      $("empty").hidden = true;
    }

    show(state, message, quiet) {
      this.item.className = `upload ${state}`;
      this.state.className = `state state-${state}`;
      this.state.textContent = STATES[state] || state;
      this.message.textContent = message || "";
      if (!quiet) announce(`${this.file.name}: ${STATES[state] || state}${message ? `. ${message}` : ""}`);
    }

    // Client-side checks mirror the API's: accepted types and sizes from GET /limits.
    refusal() {
      const file = this.file;
      const dot = file.name.lastIndexOf(".");
      const ext = dot >= 0 ? file.name.slice(dot).toLowerCase() : "";
      const typeOk = file.type
        ? limits.accepted_types.includes(file.type)
        : limits.accepted_extensions.includes(ext);
      if (!typeOk) {
        return `${file.type || ext || "this file"} is not an accepted format; accepted: ${limits.accepted_types.join(", ")}.`;
      }
      if (file.size === 0) return "The file is empty.";
      const max = this.canPresign() ? limits.max_presigned_bytes : limits.max_upload_bytes;
      if (file.size > max) return tooLarge(file.size, max);
      return null;
    }

    canPresign() {
      return limits.presigned_route !== false;
    }

    contentType() {
      if (this.file.type) return this.file.type;
      const ext = this.file.name.slice(this.file.name.lastIndexOf(".") + 1).toLowerCase();
      return { heic: "image/heif", heif: "image/heif", avif: "image/avif" }[ext] || "application/octet-stream";
    }

    async start() {
      const refused = this.refusal();
      if (refused) {
        this.show("refused", refused);
        return;
      }
      this.show("uploading", "", true);
      this.progress.hidden = false;
      try {
        const id = this.canPresign() ? await this.viaPresignedPost() : await this.direct();
        if (!id) return;
        this.id = id;
        this.item.dataset.imageId = id;
        this.progress.value = 100;
        this.show("pending", "Uploaded; waiting for the pipeline.");
        this.poll();
      } catch (err) {
        this.show("failed", err.message || String(err));
      }
    }

    // POST /uploads for a presigned form, then the form and the file straight to the bucket.
    async viaPresignedPost() {
      const response = await fetch("uploads", {
        method: "POST",
        headers: { "Content-Type": "application/json", ...authHeaders() },
        body: JSON.stringify({ filename: this.file.name, content_type: this.contentType(), size: this.file.size }),
      });
      if (response.status === 404 || response.status === 405) {
        // This API has no presigned route: the direct route it has.
        limits.presigned_route = false;
        if (this.file.size > limits.max_upload_bytes) {
          this.show("refused", tooLarge(this.file.size, limits.max_upload_bytes));
          return null;
        }
        return this.direct();
      }
      if (!response.ok) throw new Error(await errorOf(response));
      const body = await response.json();
      const form = new FormData();
      for (const [name, value] of Object.entries(body.upload.fields)) form.append(name, value);
      form.append("file", this.file);
      const result = await this.send(body.upload.url, form, {});
      if (result.status < 200 || result.status >= 300) {
        const found = /<Message>([^<]*)<\/Message>/.exec(result.responseText || "");
        throw new Error(`The storage refused the upload (HTTP ${result.status})${found ? `: ${found[1]}` : ""}`);
      }
      return body.id;
    }

    // POST /images with the file as the multipart field "file".
    async direct() {
      const form = new FormData();
      form.append("file", this.file);
      const result = await this.send("images", form, authHeaders());
      if (result.status !== 201) {
        throw new Error(await errorOf(new Response(result.responseText, { status: result.status })));
      }
      return JSON.parse(result.responseText).id;
    }

    // XMLHttpRequest, not fetch: only it reports upload progress.
    send(url, form, headers) {
      return new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        xhr.open("POST", url);
        for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
        xhr.upload.addEventListener("progress", (event) => {
          if (event.lengthComputable) this.progress.value = Math.round((event.loaded / event.total) * 100);
        });
        xhr.addEventListener("load", () => resolve(xhr));
        xhr.addEventListener("error", () => reject(new Error("The upload could not reach the server (network or CORS error).")));
        xhr.send(form);
      });
    }

    async poll() {
      this.polls += 1;
      let response;
      try {
        response = await fetch(`images/${encodeURIComponent(this.id)}`, { headers: authHeaders() });
      } catch (err) {
        this.later();
        return;
      }
      if (!response.ok) {
        this.show("failed", await errorOf(response));
        return;
      }
      const image = await response.json();
      if (image.status === "done") {
        this.progress.hidden = true;
        this.renderDone(image);
      } else if (image.status === "failed") {
        this.progress.hidden = true;
        const error = image.error || {};
        this.show("failed", error.message ? `${error.message} (${error.code})` : "The image could not be processed.");
      } else {
        const state = STATES[image.status] ? image.status : "pending";
        if (this.state.textContent !== STATES[state]) this.show(state, "");
        this.later();
      }
    }

    later() {
      window.setTimeout(() => this.poll(), Math.min(POLL_MS * Math.ceil(this.polls / 10), POLL_MAX_MS));
    }

    renderDone(image) {
      const list = el("ul", { className: "renditions" });
      list.setAttribute("aria-label", `Renditions of ${this.file.name}`);
      for (const r of image.renditions) {
        const label = `${r.name} ${r.format}`;
        const img = el("img", { src: r.url, alt: `${this.file.name}, ${label}, ${r.width}×${r.height}`});
        list.append(el("li", { className: "rendition" }, [
          img,
          el("p", { className: "rendition-name", textContent: `${r.name} · ${r.format.toUpperCase()}` }),
          el("p", { textContent: `${r.width}×${r.height} px · ${r.bytes.toLocaleString("en")} bytes` }),
          el("p", {}, [el("a", { href: r.url, textContent: `Open ${label}`, target: "_blank", rel: "noopener noreferrer" })]),
        ]));
      }
      this.results.replaceChildren(list);
      this.show("done", `${image.renditions.length} renditions ready.`);
    }
  }

  function pick(files) {
    for (const file of files) new Upload(file).start();
  }

  function setUpAuth() {
    if (limits.auth !== "jwt") return;
    const input = $("token");
    $("auth").hidden = false;
    $("auth").addEventListener("submit", (event) => event.preventDefault());
    input.value = token();
    input.addEventListener("input", () => window.sessionStorage.setItem(TOKEN_KEY, input.value.trim()));
    $("forget").addEventListener("click", () => {
      window.sessionStorage.removeItem(TOKEN_KEY);
      input.value = "";
      announce("Token forgotten.");
      input.focus();
    });
  }

  function setUpPicker() {
    const input = $("files");
    const zone = $("picker");
    const types = limits.accepted_types;
    input.accept = [...types, ...limits.accepted_extensions].join(",");
    input.addEventListener("change", () => {
      pick(input.files);
      input.value = "";
    });
    zone.addEventListener("submit", (event) => event.preventDefault());
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      pick(event.dataTransfer.files);
    });
    const names = types.map((t) => t.replace("image/", "").toUpperCase()).join(", ");
    $("accepted").textContent = `Accepted: ${names}. Several at once are fine.`;
    $("limits").textContent = `Each image may be up to ${formatBytes(limits.max_presigned_bytes)}. ` +
      "Every upload gets its renditions, shown here when they are ready.";
  }

  async function main() {
    try {
      const response = await fetch("limits");
      if (!response.ok) throw new Error(await errorOf(response));
      limits = await response.json();
    } catch (err) {
      $("limits").textContent = `This service's limits could not be read: ${err.message}. Reload the page to try again.`;
      $("files").disabled = true;
      return;
    }
    setUpAuth();
    setUpPicker();
  }

  main();
})();
