// Opens a page of the Temporal Web UI in headless Chromium (playwright-core)
// and reports which texts it shows. Usage:
//   node ui.js URL SCREENSHOT WAIT_FOR_TEXT [TEXT...]
// Waits for WAIT_FOR_TEXT (something shown with or without a codec), then
// looks for each TEXT; prints {"found": {TEXT: bool}} as JSON.
const { chromium } = require('playwright-core');

async function main() {
  const [url, screenshot, waitFor, ...texts] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1600 } });
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 60000 });
    await page.getByText(waitFor).first().waitFor({ timeout: 60000 });
    const found = {};
    for (const text of texts) {
      try {
        await page.getByText(text).first().waitFor({ timeout: 15000 });
        found[text] = true;
      } catch {
        found[text] = false;
      }
    }
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ found }));
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
