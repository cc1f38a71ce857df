// A webhook receiver for printgate, verified with the stock library.
//
//   npm install standardwebhooks
//   WEBHOOK_SECRET=whsec_... PORT=8789 node receiver.mjs
//
// Prints each verified event as one JSON line; answers 401 to anything
// that does not verify.
import http from "node:http";
import { Webhook } from "standardwebhooks";

const webhook = new Webhook(process.env.WEBHOOK_SECRET);
const seen = new Set(); // webhook-id: the same on every retry of one event

http
  .createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      let event;
      try {
        event = webhook.verify(body, req.headers);
      } catch (e) {
        console.log(JSON.stringify({ rejected: String(e) }));
        res.writeHead(401).end();
        return;
      }
      const id = req.headers["webhook-id"];
      if (!seen.has(id)) {
        seen.add(id);
        console.log(JSON.stringify({ id, ...event }));
      }
      res.writeHead(204).end();
    });
  })
  .listen(Number(process.env.PORT ?? 8789), "127.0.0.1");
