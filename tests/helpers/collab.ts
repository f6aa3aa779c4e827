import * as decoding from "lib0/decoding";
import WebSocket from "ws";
import { WebsocketProvider } from "y-websocket";
import * as Y from "yjs";
import { COLLAB_PATH } from "../../shared/notebook/protocol.ts";
import type { AccessToken } from "../../shared/schemas/auth.ts";
import type { NotebookInfo } from "../../shared/schemas/notebooks.ts";
import { waitFor } from "./factories.ts";
import type { Client } from "./http.ts";

export interface Editor {
  doc: Y.Doc;
  provider: WebsocketProvider;
  /** close codes the provider's sockets were closed with */
  closes: number[];
  /** "permission denied" reasons the server sent */
  denied: string[];
  close(): void;
}

/** An access token for a user's client (non-browser clients authenticate the upgrade with it). */
export async function tokenOf(client: Client): Promise<string> {
  return (await client.post<AccessToken>("/api/v1/auth/token")).body.token;
}

export async function notebookOf(client: Client, roomId: string): Promise<NotebookInfo> {
  const res = await client.get<NotebookInfo>(`/api/v1/rooms/${roomId}/notebook`);
  if (res.status !== 200) throw new Error(`notebook: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/**
 * The stock y-websocket `WebsocketProvider` (with `ws` as its WebSocket) on a node's `/collab/` endpoint,
 * authenticated by `?token=`. Resolves once synced unless `wait` is false.
 */
export async function openEditor(
  baseUrl: string,
  notebookId: string,
  token: string,
  { wait = true, connect = true }: { wait?: boolean; connect?: boolean } = {},
): Promise<Editor> {
  const doc = new Y.Doc();
  const serverUrl = `${baseUrl.replace(/^http/, "ws")}${COLLAB_PATH.slice(0, -1)}`;
  const provider = new WebsocketProvider(serverUrl, notebookId, doc, {
    WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket,
    params: { token },
    connect,
    disableBc: true,
  });
  const closes: number[] = [];
  const denied: string[] = [];
  provider.on("connection-close", (event: CloseEvent | null) => {
    if (event) closes.push(event.code);
  });
  const editor: Editor = {
    doc,
    provider,
    closes,
    denied,
    close() {
      provider.destroy();
      doc.destroy();
    },
  };
  patchPermissionDenied(provider, denied);
  if (wait) await waitFor(() => provider.synced, 10_000);
  return editor;
}

/**
 * y-websocket reports the protocol's "permission denied" message through a module-level handler that logs;
 * the provider exposes the message handlers table, so the test records the reason there.
 */
function patchPermissionDenied(provider: WebsocketProvider, denied: string[]): void {
  const handlers = (provider as unknown as { messageHandlers: unknown[] }).messageHandlers;
  const AUTH = 2;
  handlers[AUTH] = (_encoder: unknown, decoder: decoding.Decoder) => {
    // [messagePermissionDenied = 0][reason: varString]
    if (decoding.readVarUint(decoder) === 0) denied.push(decoding.readVarString(decoder));
  };
}

/** The document as JSON (what converged editors must agree on). */
export function jsonOf(doc: Y.Doc): string {
  return JSON.stringify(doc.getArray("cells").toJSON());
}
