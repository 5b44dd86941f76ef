/** @jsxImportSource hono/jsx */
// The pages' frame: one stylesheet (a static asset), a language, a title, landmarks.
import type { Child } from "hono/jsx";

export function Layout(props: { title: string; children: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{props.title}</title>
        <link rel="stylesheet" href="/styles.css" />
      </head>
      <body>
        <main>{props.children}</main>
      </body>
    </html>
  );
}
