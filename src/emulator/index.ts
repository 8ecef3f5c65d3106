import { Emulator, type EmulatorOptions } from "./emulator.ts";
import { registerAdmin } from "./providers/admin.ts";
import { registerCompute } from "./providers/compute.ts";
import { registerGallery } from "./providers/gallery.ts";
import { registerMarketplace } from "./providers/marketplace.ts";

export { Emulator, type EmulatorOptions, type Fault } from "./emulator.ts";
export type { ClientRegistration } from "./identity.ts";
export type { CatalogImage, GalleryCatalogImage } from "./providers/marketplace.ts";

/** Creates and starts an emulator with every provider registered. */
export async function startEmulator(opts: EmulatorOptions = {}): Promise<Emulator> {
  const emu = await Emulator.create(opts);
  registerCompute(emu);
  registerGallery(emu);
  registerMarketplace(emu);
  registerAdmin(emu);
  try {
    await emu.start();
  } catch (err) {
    await emu.stop();
    throw err;
  }
  return emu;
}
